# ferbench: masksynth, ferbench and ferstats. See README.md.
#   make deps   install the Debian packages everything needs (idempotent)
#   make        build bin/masksynth bin/ferbench bin/ferstats (and bin/libfbcuda.so, the CUDA
#               backend, when nvcc and cudnn.h are found; `make cuda` insists on it)
#   make test   build and run every test (ends with the runner's summary)
#   make asan   the same tests on an ASan + UBSan build (CPU only: nvcc code is not sanitized)
#   make bench  speed benchmarks against the Python tools users have today
#   make demo   a walk-through on the bundled example predictions
#   make fuzz   libFuzzer (clang, ASan + UBSan) on the parsers of untrusted files, FUZZ_SECONDS each

CC      ?= gcc
BUILD   ?= build
BIN     ?= bin
OPT     ?= -O2
SAN     ?=
CFLAGS  := -std=c11 -D_GNU_SOURCE -I/usr/include/x86_64-linux-gnu/openblas-pthread -fopenmp -fno-math-errno $(OPT) -g -Wall -Wextra -Werror -MMD -MP $(SAN)
LDFLAGS := -fopenmp $(SAN)
LDLIBS  := -lpng16 -ljpeg -lz -lgsl -lgslcblas -lsqlite3 -lm -lpthread
MASK_LIBS := -ldlib -llapack -lblas -lstdc++

# Debian packages, by name. python3-* are the test oracles (scikit-learn,
# statsmodels); perl provides prove, the TAP test runner.
DEB_PACKAGES := build-essential pkg-config libgsl-dev libsqlite3-dev sqlite3 libcmocka-dev \
                libpng-dev libjpeg62-turbo-dev zlib1g-dev libdlib-dev libdlib-data libblas-dev liblapack-dev libopenblas-dev \
                perl python3 python3-numpy python3-scipy python3-pandas python3-sklearn python3-statsmodels python3-torch

COMMON_SRC := common/util.c common/csv.c common/strmap.c common/rng.c common/log.c common/cli.c common/numfmt.c \
              common/sha256.c common/image.c
STATS_SRC  := stats/preds.c stats/metrics.c stats/hypothesis.c stats/distributions.c stats/bootstrap.c stats/svg.c
DB_SRC     := db/db.c
ENGINE_SRC := engine/model.c engine/safetensors.c engine/ops_conv.c engine/ops_misc.c engine/net.c engine/optim.c \
              engine/backend_cpu.c
ENGINE_LIBS := -lopenblas -ldl
# The data pipeline reads the database, so it is kept apart from ENGINE_OBJ.
DATA_SRC   := engine/data.c
FERBENCH_SRC := bench/main.c bench/commands.c bench/common.c bench/train.c bench/run.c bench/speed.c bench/predout.c bench/import.c bench/report.c
MASK_SRC   := masksynth/dataset.c masksynth/ingest.c masksynth/phash.c masksynth/plan.c masksynth/store.c \
              masksynth/checks.c masksynth/face.c masksynth/fixture.c masksynth/mask.c masksynth/mask_preview.c masksynth/render.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

# The CUDA backend (engine/cuda/, loaded by `--device cuda`): built into
# $(BIN)/libfbcuda.so when nvcc and cudnn.h are found (CUDA_HOME, default
# /usr/local/cuda, or nvcc on PATH); CPU-only builds are unchanged. It links
# cuDNN and cuBLAS, the C tools never do. CUDA_ARCH: the GPUs to compile for.
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
CUDNN_HOME ?= $(CUDA_HOME)
CUDNN_H   := $(firstword $(wildcard $(CUDNN_HOME)/include/cudnn.h $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h \
                                    /usr/include/x86_64-linux-gnu/cudnn.h))
CUDNN_LIB := $(firstword $(wildcard $(CUDNN_HOME)/lib64/libcudnn.so $(CUDNN_HOME)/lib/libcudnn.so) $(CUDA_HOME)/lib64/libcudnn.so)
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
CUDA_SRC  := engine/cuda/backend_cuda.cu engine/cuda/cudnn_ops.cu engine/cuda/kernels.cu
CUDA_OBJ  := $(patsubst %.cu,$(BUILD)/%.o,$(CUDA_SRC))
NVCCFLAGS := -std=c++17 -O2 -g $(CUDA_ARCH) -I$(CUDA_HOME)/include $(if $(CUDNN_H),-I$(patsubst %/,%,$(dir $(CUDNN_H)))) \
             -Xcompiler -fPIC,-Wall,-Wextra,-Werror -Werror all-warnings
CUDA_LIB  := $(if $(and $(NVCC),$(CUDNN_H)),$(BIN)/libfbcuda.so)
COMMON_OBJ := $(call obj,$(COMMON_SRC))
STATS_OBJ  := $(call obj,$(STATS_SRC))
DB_OBJ     := $(call obj,$(DB_SRC)) $(BUILD)/db_schema_sql.o
ENGINE_OBJ := $(call obj,$(ENGINE_SRC))
DATA_OBJ   := $(call obj,$(DATA_SRC))
FERBENCH_OBJ := $(call obj,$(FERBENCH_SRC))
MASK_OBJ   := $(call obj,$(MASK_SRC)) $(BUILD)/protocols.o $(BUILD)/masksynth/landmarks.o

TOOLS := $(BIN)/masksynth $(BIN)/ferbench $(BIN)/ferstats $(CUDA_LIB)
# The fuzz targets (tests/fuzz/; rules below): their replays are part of the suite.
FUZZ_TARGETS := csv preds image safetensors ingest manifest protocol import
FUZZ_REPLAY := $(patsubst %,$(BUILD)/tests/fuzz_%,$(FUZZ_TARGETS))
TESTS := $(BUILD)/tests/test_csv $(BUILD)/tests/test_stats $(BUILD)/tests/test_db $(BUILD)/tests/test_image \
         $(BUILD)/tests/test_fixture $(BUILD)/tests/test_masksynth $(BUILD)/tests/test_mask $(BUILD)/tests/test_landmarks \
         $(BUILD)/tests/test_render_inputs $(BUILD)/tests/test_engine $(BUILD)/tests/write_weights \
         $(BUILD)/tests/test_ops_conv $(BUILD)/tests/test_ops_misc $(BUILD)/tests/test_ops_threads \
         $(BUILD)/tests/test_data $(BUILD)/tests/forward_dump \
         $(BUILD)/tests/train_dump $(BUILD)/tests/test_backend $(BUILD)/tests/test_kernels_emu $(BUILD)/tests/net_parity \
         $(BUILD)/tests/libfbcuda_emu.so \
         $(FUZZ_REPLAY)

.PHONY: all deps test asan bench demo clean check-tools cuda cuda-missing fuzz fuzz-deps
.DELETE_ON_ERROR:
all: $(TOOLS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The one C++ file: dlib behind an extern "C" interface.
CXX      ?= g++
CXXFLAGS := -std=c++17 $(OPT) -g -Wall -Wextra -Werror -MMD -MP $(SAN)
$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/engine/cuda/%.o: engine/cuda/%.cu engine/cuda/cuda_internal.h engine/cuda/kernels.h engine/backend.h engine/ops.h engine/optim.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BIN)/libfbcuda.so: $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	$(NVCC) -shared $(CUDA_ARCH) $^ -o $@ -L$(dir $(CUDNN_LIB)) -L$(CUDA_HOME)/lib64 -lcudnn -lcublas \
	  -Xlinker -rpath,$(patsubst %/,%,$(dir $(CUDNN_LIB))):$(CUDA_HOME)/lib64

cuda: $(if $(CUDA_LIB),$(CUDA_LIB),cuda-missing)
cuda-missing:
	@echo "cuda: nvcc ($(if $(NVCC),$(NVCC),not found)) and cudnn.h ($(if $(CUDNN_H),$(CUDNN_H),not found)) are both needed"; exit 1

$(BUILD)/db_schema_sql.c: db/schema.sql db/embed.sh
	@mkdir -p $(dir $@)
	sh db/embed.sh db/schema.sql $@ db_schema_sql

$(BUILD)/db_schema_sql.o: $(BUILD)/db_schema_sql.c
	$(CC) $(CFLAGS) -c $< -o $@

# The protocol files are compiled in, so the tools run from any folder.
PROTOCOLS := manifests/rafdb.protocol.csv manifests/ferplus-label_csv.protocol.csv manifests/ferplus-fer2013new.protocol.csv
$(BUILD)/protocols.c: $(PROTOCOLS) db/embed.sh
	@mkdir -p $(dir $@)
	sh db/embed.sh manifests/rafdb.protocol.csv $@.rafdb protocol_rafdb
	sh db/embed.sh manifests/ferplus-label_csv.protocol.csv $@.label protocol_ferplus_label_csv
	sh db/embed.sh manifests/ferplus-fer2013new.protocol.csv $@.new protocol_ferplus_fer2013new
	cat $@.rafdb $@.label $@.new > $@ && rm -f $@.rafdb $@.label $@.new

$(BUILD)/protocols.o: $(BUILD)/protocols.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BIN)/ferstats: $(BUILD)/stats/ferstats.o $(STATS_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BIN)/masksynth: $(BUILD)/masksynth/main.o $(MASK_OBJ) $(DB_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(MASK_LIBS) $(LDLIBS)

$(BIN)/ferbench: $(FERBENCH_OBJ) $(ENGINE_OBJ) $(DATA_OBJ) $(DB_OBJ) $(STATS_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(ENGINE_LIBS) $(LDLIBS)

$(BUILD)/tests/test_csv: $(BUILD)/tests/test_csv.o $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

$(BUILD)/tests/test_stats: $(BUILD)/tests/test_stats.o $(STATS_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

$(BUILD)/tests/test_db: $(BUILD)/tests/test_db.o $(DB_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

$(BUILD)/tests/test_engine: $(BUILD)/tests/test_engine.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(ENGINE_LIBS) $(LDLIBS)

$(BUILD)/tests/write_weights: $(BUILD)/tests/write_weights.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(ENGINE_LIBS) $(LDLIBS)

$(BUILD)/tests/forward_dump: $(BUILD)/tests/forward_dump.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(ENGINE_LIBS) $(LDLIBS)

$(BUILD)/tests/test_data: $(BUILD)/tests/test_data.o $(DATA_OBJ) $(DB_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

$(BUILD)/tests/train_dump: $(BUILD)/tests/train_dump.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(ENGINE_LIBS) $(LDLIBS)

$(BUILD)/tests/test_ops_conv: $(BUILD)/tests/test_ops_conv.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(ENGINE_LIBS) $(LDLIBS)

$(BUILD)/tests/test_ops_misc: $(BUILD)/tests/test_ops_misc.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(ENGINE_LIBS) $(LDLIBS)

$(BUILD)/tests/test_ops_threads: $(BUILD)/tests/test_ops_threads.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(ENGINE_LIBS) $(LDLIBS)

# Backend parity (CPU reference against FB_TEST_DEVICE; tests/gpu/run.sh runs them on a GPU).
$(BUILD)/tests/test_backend: $(BUILD)/tests/test_backend.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(ENGINE_LIBS) $(LDLIBS)

# The CUDA kernels' logic test: engine/cuda/kernels.cu compiled for the host over
# tests/cuda_emu/cuda_emu.h (no CUDA headers, no nvcc), each k_* checked bitwise
# against the CPU ops. -ffp-contract=off: the emulated __fmul_rn/__fadd_rn must
# stay separate roundings, as on the device.
EMU_CXXFLAGS := -std=c++20 -O1 -g -pthread -ffp-contract=off -Wall -Wextra -Werror -MMD -MP $(SAN) \
                -DFB_CUDA_EMU -Itests/cuda_emu
EMU_OBJ := $(BUILD)/tests/cuda_emu/kernels.o $(BUILD)/tests/cuda_emu/cuda_emu.o \
           $(BUILD)/tests/cuda_emu/test_kernels_emu.o

$(BUILD)/tests/cuda_emu/kernels.o: engine/cuda/kernels.cu
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -c $< -o $@

$(BUILD)/tests/cuda_emu/%.o: tests/cuda_emu/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(BUILD)/tests/test_kernels_emu: $(EMU_OBJ) $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CXX) $(LDFLAGS) -pthread $^ -o $@ $(ENGINE_LIBS) $(LDLIBS)

# The whole CUDA backend over the host emulation (tests/cuda_emu/include/:
# cuda_runtime.h, cublas_v2.h, cudnn.h; emu_libs.cpp): the three .cu files
# unchanged in libfbcuda_emu.so, which test_backend and net_parity load as
# their "cuda" device (tests/test_backend_emu.sh). It checks the backend's
# use of cuDNN and cuBLAS (descriptors, algorithms, workspaces, pointers),
# not the GPU.
EMU_FULL_CXXFLAGS := $(EMU_CXXFLAGS) -fPIC -DFB_CUDA_EMU_FULL -Itests/cuda_emu/include
EMU_FULL_OBJ := $(patsubst engine/cuda/%.cu,$(BUILD)/tests/cuda_emu/full/%.o,$(CUDA_SRC)) \
                $(BUILD)/tests/cuda_emu/full/cuda_emu.o $(BUILD)/tests/cuda_emu/full/emu_libs.o

$(BUILD)/tests/cuda_emu/full/%.o: engine/cuda/%.cu
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_FULL_CXXFLAGS) -x c++ -c $< -o $@

$(BUILD)/tests/cuda_emu/full/%.o: tests/cuda_emu/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_FULL_CXXFLAGS) -c $< -o $@

$(BUILD)/tests/libfbcuda_emu.so: $(EMU_FULL_OBJ)
	$(CXX) -shared -pthread $(SAN) $^ -o $@

$(BUILD)/tests/net_parity: $(BUILD)/tests/net_parity.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(ENGINE_LIBS) $(LDLIBS)

# Timing harness of the ops (not part of the suite): make build/tests/bench_ops
$(BUILD)/tests/bench_ops: $(BUILD)/tests/bench_ops.o $(ENGINE_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(ENGINE_LIBS) $(LDLIBS)

# Fuzz targets (tests/fuzz/): the parsers of files users hand us. Each target is
# linked twice: with tests/fuzz/replay.c into the suite (every input of
# tests/fuzz/corpus/<target>/ once, found by the binary's name), and with
# libFuzzer by `make fuzz` (clang, into build/fuzz/).
FUZZ_SRC_csv := $(COMMON_SRC)
FUZZ_SRC_preds := $(STATS_SRC) $(COMMON_SRC)
FUZZ_SRC_image := $(COMMON_SRC)
FUZZ_SRC_safetensors := engine/model.c engine/safetensors.c $(COMMON_SRC)
FUZZ_SRC_ingest := masksynth/ingest.c masksynth/dataset.c masksynth/phash.c $(COMMON_SRC)
FUZZ_SRC_manifest := masksynth/checks.c masksynth/plan.c masksynth/dataset.c masksynth/phash.c $(COMMON_SRC)
FUZZ_GEN_manifest := protocols.o
FUZZ_SRC_protocol := $(FUZZ_SRC_manifest)
FUZZ_GEN_protocol := protocols.o
# import runs the real command table (bench/commands.c) on a fixture database.
FUZZ_SRC_import := $(filter-out bench/main.c,$(FERBENCH_SRC)) $(ENGINE_SRC) $(DATA_SRC) $(DB_SRC) $(STATS_SRC) \
                   $(COMMON_SRC)
FUZZ_GEN_import := db_schema_sql.o
FUZZ_PACKAGES := clang libclang-rt-14-dev
FUZZ_BUILD := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -I/usr/include/x86_64-linux-gnu/openblas-pthread -fopenmp-simd -fno-math-errno \
               -O1 -g -Wall -Wextra -Werror -Wno-pass-failed -MMD -MP -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_BINS := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_SECONDS ?= 60
fuzz_obj = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(1))

.SECONDEXPANSION:
$(FUZZ_REPLAY): $(BUILD)/tests/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o \
                $(BUILD)/tests/fuzz/fuzz_util.o $$(call obj,$$(FUZZ_SRC_$$*)) \
                $$(addprefix $(BUILD)/,$$(FUZZ_GEN_$$*))
	$(CC) $(LDFLAGS) $^ -o $@ $(ENGINE_LIBS) $(LDLIBS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@

# The two kernels files use GCC's vector builtins (and OpenMP): gcc compiles
# them, unsanitized; the parsers under test are all clang-instrumented.
FUZZ_GCC_OBJ := $(FUZZ_BUILD)/engine/ops_conv.o $(FUZZ_BUILD)/engine/ops_misc.o
$(FUZZ_GCC_OBJ): $(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Generated sources (the schema, the protocols): FUZZ_GEN_<target>.
$(FUZZ_BUILD)/db_schema_sql.o $(FUZZ_BUILD)/protocols.o: $(FUZZ_BUILD)/%.o: $(BUILD)/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BINS): $(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/tests/fuzz/fuzz_util.o \
              $$(call fuzz_obj,$$(FUZZ_SRC_$$*)) \
              $$(addprefix $(FUZZ_BUILD)/,$$(FUZZ_GEN_$$*))
	clang -fsanitize=fuzzer $(FUZZ_SAN) $^ -o $@ $(ENGINE_LIBS) $(LDLIBS) -lgomp

fuzz-deps:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_PACKAGES) $(FUZZ_PACKAGES)"

# The import's target makes its fixture database with bin/masksynth.
fuzz: fuzz-deps
	@$(MAKE) --no-print-directory $(BIN)/masksynth $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) sh tests/fuzz/run.sh $(FUZZ_TARGETS)

$(BUILD)/tests/test_image: $(BUILD)/tests/test_image.o $(BUILD)/tests/imgfix.o $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

$(BUILD)/tests/test_fixture: $(BUILD)/tests/test_fixture.o $(MASK_OBJ) $(DB_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(MASK_LIBS) $(LDLIBS)

$(BUILD)/tests/test_masksynth: $(BUILD)/tests/test_masksynth.o $(MASK_OBJ) $(DB_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(MASK_LIBS) $(LDLIBS)

$(BUILD)/tests/test_mask: $(BUILD)/tests/test_mask.o $(MASK_OBJ) $(DB_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(MASK_LIBS) $(LDLIBS)

$(BUILD)/tests/test_render_inputs: $(BUILD)/tests/test_render_inputs.o $(BUILD)/tests/imgfix.o $(MASK_OBJ) $(DB_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(MASK_LIBS) $(LDLIBS)

$(BUILD)/tests/test_landmarks: $(BUILD)/tests/test_landmarks.o $(MASK_OBJ) $(DB_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(MASK_LIBS) $(LDLIBS)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: missing$$missing; run as root:"; \
	  echo "  apt-get update && apt-get install -y --no-install-recommends$$missing"; exit 1; fi

# The suite: cmocka unit tests (TAP output), CLI tests and the oracle, run by prove.
test: deps
	$(MAKE) --no-print-directory all-tests
	FERBENCH_BIN=$(BIN) TEST_BUILD=$(BUILD)/tests sh tests/run.sh

all-tests: $(TOOLS) $(TESTS)

asan: deps
	$(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin OPT=-O1 CUDA_LIB= \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" all-tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  FERBENCH_BIN=build/asan/bin TEST_BUILD=build/asan/tests sh tests/run.sh

bench: deps all
	sh bench/perf/run.sh

demo: deps all
	sh masksynth/demo.sh
	sh bench/demo.sh
	sh stats/examples/demo.sh

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
