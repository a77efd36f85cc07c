#!/usr/bin/env bash
# Fault matrix, the tool fails at each fault point (tests/lib/faults.sh).
FAULT_MODE=error . "$(dirname "$0")/../lib/faults.sh"
