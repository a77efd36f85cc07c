#!/usr/bin/env bash
# qapi-facts.sh QEMU_BINARY...: what each QEMU's monitor says about COLO, without a guest
# (-machine none): the x-colo capability, the default x-checkpoint-delay, query-colo-status,
# x-colo-lost-heartbeat outside COLO, whether x-colo needs return-path, the COLO commands'
# deprecation flags in the QMP schema, and the colo/replication objects and block drivers.
set -u
for q in "$@"; do
	echo "== $q: $("$q" --version | head -n 1)"
	printf '%s\n' '{"execute":"qmp_capabilities"}' \
		'{"execute":"query-migrate-capabilities"}' \
		'{"execute":"query-migrate-parameters"}' \
		'{"execute":"query-colo-status"}' \
		'{"execute":"x-colo-lost-heartbeat"}' \
		'{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-colo","state":true}]}}' \
		'{"execute":"query-qmp-schema"}' \
		'{"execute":"quit"}' |
		timeout 20 "$q" -machine none -display none -nodefaults -qmp stdio 2>/dev/null >/tmp/qapi-facts.$$
	sed -n 3p /tmp/qapi-facts.$$ | jq -c '[.return[] | select(.capability | test("colo|return-path")) ]'
	sed -n 4p /tmp/qapi-facts.$$ | jq -c '.return | {"x-checkpoint-delay": .["x-checkpoint-delay"]}'
	sed -n 5p /tmp/qapi-facts.$$ | jq -c '{"query-colo-status": .}'
	sed -n 6p /tmp/qapi-facts.$$ | jq -c '{"x-colo-lost-heartbeat outside COLO": .}'
	sed -n 7p /tmp/qapi-facts.$$ | jq -c '{"set x-colo alone": .}'
	sed -n 8p /tmp/qapi-facts.$$ | jq -c '[.return[] | select(.["meta-type"] == "command" and (.name | test("colo"))) | {name, features}]'
	for o in colo-compare filter-mirror filter-redirector filter-rewriter; do
		"$q" -object "$o,help" >/dev/null 2>&1 && echo "object $o: yes" || echo "object $o: no"
	done
	for d in replication quorum nbd; do
		"$q" -machine none -display none -nodefaults -blockdev "driver=$d,node-name=x" -S 2>&1 </dev/null |
			head -n 1 | sed "s/^/blockdev $d (no options: an error naming a missing option means the driver exists): /"
	done
	rm -f /tmp/qapi-facts.$$
done
