# SPDX-License-Identifier: GPL-2.0
#
# Vela. Two commands do everything on a fresh machine:
#   make run    boot a VM with the Vela accelerator, load the driver, show it working
#   make check  every test: host tests, lints, and the guest tests in the VM
#   make bench  benchmarks: the device model on the host, the driver in the VM
#   make bench-rdma  only the RDMA benchmarks: perftest in one VM, then between two
#   make bench-vgpu  only the vGPU benchmark: an instance against the host's accel path
#   make bench-prime only vela-prime-bench: sharing, P2P copies, moves to system memory and back
#   make soak   an hour of fuzzing with faults and unbinds under it (not in check)
#   make vm-test T=prime,sched  only those guest tests (and probe, which loads vela.ko)
#   VELA_KERNEL=fast            any of them on the gcc kernel without sanitizers
#   make fuzz-corpus            grow vela-fuzz's corpus in the VM (VELA_FUZZ_MINUTES, default 10)
#
# vela.ko itself is built by kbuild from Kbuild; everything the build makes
# goes to $(VELA_CACHE), outside the work tree.

VELA_CACHE ?= /var/cache/vela
# The test kernel: strict (clang, KASAN, UBSAN, KFENCE, KCOV; what check runs on)
# or fast (gcc, no sanitizers; `make vm-test VELA_KERNEL=fast T=...` for the edit loop).
VELA_KERNEL ?= strict
export VELA_CACHE VELA_KERNEL
CARGO ?= cargo
BIN := tools/target/release
# Guest tests of `make vm-test`, comma-separated (vela-harness check --tests); empty: all.
T ?=

.PHONY: all deps module tools rdma run check host-test lint lint-driver lint-tools vm-test bench bench-rdma bench-vgpu bench-prime soak fuzz-corpus clean help

all: module tools

help:
	@sed -n '3,16p' Makefile

deps:
	tools/build/host-deps.sh
	tools/build/buildroot.sh

module: deps
	tools/build/module.sh

tools: deps
	cd tools && $(CARGO) build --release --workspace --bins

# The guests' RDMA userspace: librxe and perftest patched (rdma-tests/patches),
# installed into the build root, and rdma-tests/tests; cached by input.
rdma: deps
	rdma-tests/build.sh

run: module tools rdma
	$(BIN)/vela-harness run

host-test: deps
	cd tools && $(CARGO) test --release --workspace

# The driver with the kernel's rustfmt and clippy (tools/build/lint-driver.sh; --fix
# formats it), the tools with cargo's.
lint: lint-driver lint-tools

lint-driver: deps
	tools/build/lint-driver.sh

lint-tools: deps
	cd tools && $(CARGO) fmt --all --check
	cd tools && $(CARGO) clippy --release --workspace --all-targets -- -D warnings

vm-test: module tools rdma
	$(BIN)/vela-harness check $(if $(strip $(T)),--tests $(T))

# The VM run comes last: its summary line is the run's verdict. Every guest test,
# whatever T or VELA_ONLY say.
# The kernel and module build first, with the host tests and the RDMA userspace beside it:
# the kernel build has long single-threaded stretches (the Rust crates, the final links)
# whose idle core the other two fill.
check:
	$(MAKE) -j2 module host-test rdma lint-tools
	$(MAKE) lint-driver
	VELA_ONLY= $(MAKE) vm-test T=

# The device model's own benchmark (host), then the driver's in the VM, on the fast
# kernel: sanitizers would measure themselves (BENCH_KERNEL=strict to see how much).
# The VM's last benchmark, the two-VM RDMA figures, boots a second VM (VM B of the pair).
# The VM may run an hour: the RDMA figures alone took 34 min on the strict kernel (every
# step in the guests has a timeout of its own).
BENCH_KERNEL ?= fast
BENCH_TIMEOUT ?= 3600
bench: tools rdma
	$(MAKE) module VELA_KERNEL=$(BENCH_KERNEL)
	$(BIN)/vela-model bench
	VELA_KERNEL=$(BENCH_KERNEL) $(BIN)/vela-harness bench --timeout $(BENCH_TIMEOUT)

# The RDMA benchmarks alone (vela-harness bench --rdma): vela-rdma-bench in one VM, then
# between that VM and VM B (Documentation/rdma.rst).
bench-rdma: tools rdma
	$(MAKE) module VELA_KERNEL=$(BENCH_KERNEL)
	VELA_KERNEL=$(BENCH_KERNEL) $(BIN)/vela-harness bench --rdma --timeout $(BENCH_TIMEOUT)

# The vGPU benchmark alone (vela-harness bench --vgpu): vela-vgpu-bench in one VM, an
# instance's COPY bandwidth and submit -> fence latency against the host's accel path.
bench-vgpu: tools
	$(MAKE) module VELA_KERNEL=$(BENCH_KERNEL)
	VELA_KERNEL=$(BENCH_KERNEL) $(BIN)/vela-harness bench --vgpu --timeout $(BENCH_TIMEOUT)

# The sharing and move benchmark alone (vela-harness bench --prime): vela-prime-bench in one
# VM, on the bench kernel.
bench-prime: tools
	$(MAKE) module VELA_KERNEL=$(BENCH_KERNEL)
	VELA_KERNEL=$(BENCH_KERNEL) $(BIN)/vela-harness bench --prime --timeout $(BENCH_TIMEOUT)

# Not part of check: the fuzzer at length with faults and unbinds under it (at most an
# hour; SOAK_ARGS="--minutes 10 --calls 100000" for a shorter one).
SOAK_ARGS ?=
soak: module tools rdma
	$(BIN)/vela-harness soak $(SOAK_ARGS)

# A guided session on the strict kernel (the one with KCOV) whose new programs, minimized,
# join tools/testing/fuzz/corpus with the coverage the whole corpus now reaches (COVERAGE).
FUZZ_CORPUS := tools/testing/fuzz/corpus
fuzz-corpus: module tools
	$(BIN)/vela-harness check --tests fuzz-grow --timeout $$(( ($${VELA_FUZZ_MINUTES:-10} + 15) * 60 ))
	cp $(VELA_CACHE)/work/results/latest/fuzz-corpus/*.prog $(FUZZ_CORPUS)/
	cp $(VELA_CACHE)/work/results/latest/fuzz-corpus/COVERAGE $(FUZZ_CORPUS)/COVERAGE
	@echo "corpus: $$(ls $(FUZZ_CORPUS)/*.prog | wc -l) programs, $$(du -sh $(FUZZ_CORPUS) | cut -f1), $$(cat $(FUZZ_CORPUS)/COVERAGE) sites"

clean:
	cd tools && $(CARGO) clean
	rm -rf $(VELA_CACHE)/work/module-* $(VELA_CACHE)/work/run
