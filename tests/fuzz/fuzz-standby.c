/* standby's plan from the VM's monitor (remote/standby/: plan.c, devices.c, disks.c, and
 * report.c's text and JSON of it): the input is what an 11.1 QEMU sends on its monitor socket
 * (greeting, answers to query-colo-status, query-migrate-capabilities, qom-list-types,
 * qom-list and qom-get of the devices, query-block, query-named-block-nodes, qom-get of each
 * disk's device), written to a socketpair whose write side is then shut. Every blocker it
 * finds is a refusal, never a crash; the plan's lists stay in bounds and its strings
 * terminated. Input: the monitor's bytes. */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/qmp.h"
#include "remote/standby/plan.h"
#include "remote/standby/report.h"
#include "upgrade/clock.h"

/* A VM as inspect would leave it: 11.1, running, on q35, one tap hn0 on its command line. */
static struct qu_vm vm;
static struct qu_standby_plan plan;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	char *const cmd[] = { "qemu-system-x86_64", "-netdev", "tap,id=hn0,ifname=tap0,vhost=off,vnet_hdr=off",
			      "-device", "virtio-net-pci,id=net0,netdev=hn0", NULL };
	if (qu_argv_from_array(5, cmd, &vm.argv) < 0)
		abort();
	vm.pid = getpid();
	vm.ver[0] = 11, vm.ver[1] = 1, vm.ver[2] = 3;
	snprintf(vm.runstate, sizeof(vm.runstate), "running");
	snprintf(vm.migration, sizeof(vm.migration), "none");
	snprintf(vm.machine, sizeof(vm.machine), "pc-q35-11.1");
	vm.ntaps = 1;
	snprintf(vm.taps[0].id, sizeof(vm.taps[0].id), "hn0");
	snprintf(vm.taps[0].ifname, sizeof(vm.taps[0].ifname), "tap0");
	vm.taps[0].arg = qu_argv_find(&vm.argv, "netdev", 0);
	vm.taps[0].nfds = 1;
	vm.nram = 1;
	snprintf(vm.ram[0].id, sizeof(vm.ram[0].id), "mem0");
	vm.ram[0].size = 256 << 20;
	return 0;
}

static int terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	int peer, fd = fuzz_socket_with(data, size, &peer);
	if (fd < 0)
		return 0;
	struct qu_qmp *q = NULL;
	uint64_t deadline = qu_now_us() + 10000000u;
	if (qu_qmp_attach(fd, deadline, &q) == 0) { /* fd is q's now, or closed */
		memset(&plan, 0, sizeof(plan));
		snprintf(plan.host, sizeof(plan.host), "ssh://root@host2");
		plan.interval_ms = 1000;
		if (qu_standby_plan_local(&vm, q, deadline, &plan) == 0) {
			FUZZ_CHECK(plan.nnics <= QU_STANDBY_MAX_NICS && plan.ndisks <= QU_STANDBY_MAX_DISKS);
			FUZZ_CHECK(plan.refusals.n <= QU_MAX_REFUSALS);
			for (size_t i = 0; i < plan.nnics; i++)
				FUZZ_CHECK(terminated(plan.nics[i].device, sizeof(plan.nics[i].device)) &&
					   terminated(plan.nics[i].type, sizeof(plan.nics[i].type)) &&
					   terminated(plan.nics[i].netdev, sizeof(plan.nics[i].netdev)));
			for (size_t i = 0; i < plan.ndisks; i++)
				FUZZ_CHECK(terminated(plan.disks[i].device, sizeof(plan.disks[i].device)) &&
					   terminated(plan.disks[i].file, sizeof(plan.disks[i].file)) &&
					   terminated(plan.disks[i].format, sizeof(plan.disks[i].format)));
			char *json = qu_standby_plan_json(&plan);
			FUZZ_CHECK(json != NULL);
			json_object *back = json_tokener_parse(json);
			FUZZ_CHECK(back != NULL); /* what a program reads is JSON, whatever QEMU said */
			json_object_put(back);
			free(json);
			FILE *null = fopen("/dev/null", "w");
			if (null) {
				qu_standby_plan_print(&plan, null);
				fclose(null);
			}
		}
		qu_qmp_close(q);
	}
	close(peer);
	return 0;
}
