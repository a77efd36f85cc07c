#!/usr/bin/env bash
# Fault matrix, the tool is SIGKILLed at each fault point; the guardian settles (tests/lib/faults.sh).
FAULT_MODE=kill . "$(dirname "$0")/../lib/faults.sh"
