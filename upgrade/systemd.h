/* A QEMU that is the main process of a systemd service cannot be replaced under systemd's
 * feet: when it exits, systemd counts the service as stopped, kills what is left in its
 * cgroup (the new QEMU) by default, and may restart it (a second guest). Such VMs are
 * refused; VMs in scopes (libvirt's machine.slice, systemd-run --scope) are fine. */
#ifndef QU_SYSTEMD_H
#define QU_SYSTEMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The .service unit a process is in, from the text of /proc/PID/cgroup (the v2 line, or
 * v1's name=systemd): 1 and the unit name, or 0. */
int qu_systemd_service_of(const char *cgroup_text, char *unit, size_t len);
/* PID 1 is systemd. */
int qu_systemd_is_init(void);
/* Fills why (and returns 1) when pid is the main process of a systemd service, or when it
 * is in one and systemd cannot say which process is its main one. */
int qu_systemd_main_process(pid_t pid, uint64_t deadline_us, char *why, size_t len);

#endif
