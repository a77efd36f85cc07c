/* Connecting, as root, to a monitor socket that root made in a directory the VM's user can
 * change (libvirt's /var/lib/libvirt/qemu/domain-N-NAME/monitor.sock: the socket root's and
 * not writable by the VM's user, the directory the VM's user's). The VM's user cannot connect
 * there, so the tool must; what makes it safe: the path is walked without following a link,
 * the entry must be a socket root owns, and once connected, the other end must be a socket
 * that the VM's QEMU holds (sock_diag's peer, found among its descriptors) before anything
 * is asked of it. */
#ifndef QU_ROOTSOCK_H
#define QU_ROOTSOCK_H

#include <sys/types.h>

/* A connected, close-on-exec socket, or -errno with a message. */
int qu_connect_root_socket(const char *path);
/* 0 when the peer of the connected UNIX socket sock is a socket pid holds; -EPERM (with a
 * message) when it is not, -errno when it cannot be told. */
int qu_socket_peer_of(int sock, pid_t pid);

#endif
