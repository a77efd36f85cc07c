#!/bin/sh
# qmp-listen.sh LOG: run by socat on a QMP connection (its stdin and stdout): negotiates
# capabilities and appends everything QEMU says (events included) to LOG until QEMU hangs up.
echo '{"execute":"qmp_capabilities"}'
exec cat >>"$1"
