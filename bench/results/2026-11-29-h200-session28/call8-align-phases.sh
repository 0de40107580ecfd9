#!/usr/bin/env bash
# Session 28 call 8 (~1.5 min): the one-block align's phase timeline (branch probe-align-phases: clock64 per
# warp at each phase's end) and the graph-replayed launch floor of an empty kernel of its shape.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
cp "$P/fusedmoe_tests_probe" /tmp/fusedmoe_tests_probe && chmod +x /tmp/fusedmoe_tests_probe
timeout 120 /tmp/fusedmoe_tests_probe --gtest_also_run_disabled_tests --gtest_filter='*AlignProbe*' 2>&1 | tail -70
