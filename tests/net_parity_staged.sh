#!/bin/sh
# net_parity with the CPU backend posing as a device ("cpu-staged",
# engine/backend_cpu.c) against the plain CPU: the device paths of net.c (its
# own parameter copy in the device layout, 64-byte aligned tensors, output
# mirrors, transfers, the optimizer state on the backend) checked in CI
# without a GPU. Every tensor must match (NMSE 0 in practice; the same bounds
# as a GPU), and the staged backend refuses misaligned parameter pointers.
exec env FB_TEST_DEVICE=cpu-staged "${TEST_BUILD:-build/tests}/net_parity" --config fopm-tiny --batch 4 --steps 10 --deterministic
