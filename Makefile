# fusedmoe front door: `make run` and `make test` work on a fresh Debian/Ubuntu machine.
# CMake does the work; build trees live in build/<type>.
JOBS ?= $(shell nproc)
BUILD ?= build/release
CMAKE_FLAGS ?=
SETUP_STAMP := build/.setup-done

.PHONY: all setup build run test test-fast test-asan debug format format-check fuzz install clean

all: build

$(SETUP_STAMP): scripts/setup.sh
	scripts/setup.sh
	@mkdir -p build && touch $@

setup: $(SETUP_STAMP)

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFUSEDMOE_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# Runs the CLI on its built-in default preset.
run: build
	$(BUILD)/bin/fusedmoe run

# The whole suite: Release build (with the MPI tests at 2 and 4 ranks), then an address+undefined
# sanitizer build of the same tests (without MPI, whose runtime the leak checker cannot judge).
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) test-asan
	$(MAKE) fuzz FUZZ_SECONDS=$(or $(FUZZ_SECONDS),20)

# Release tests without the slow-labelled ones, for a quick loop.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow

# -g1 (line tables: the sanitizers' stack traces keep file and line) instead of -g: the build took 12 instead
# of 15.5 minutes on 2 cores. -O1 is not an option: gcc 12 then warns inside its own AVX-512 intrinsics.
test-asan: setup
	cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUSEDMOE_SANITIZE=address,undefined \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
	  -DFUSEDMOE_WERROR=ON -DFUSEDMOE_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build build/asan -j $(JOBS)
	cd build/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -LE "slow|mpi"

debug: setup
	cmake -S . -B build/debug -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build build/debug -j $(JOBS)

format:
	find include src tests -name '*.hpp' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' | xargs clang-format -i

format-check:
	find include src tests -name '*.hpp' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' | xargs clang-format --dry-run -Werror

# The safetensors reader under libFuzzer + ASan/UBSan for FUZZ_SECONDS (60 by default; 20 inside make test).
fuzz: setup
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) scripts/fuzz.sh

install: build
	cmake --install $(BUILD) --prefix $(or $(PREFIX),/usr/local)

clean:
	rm -rf build
