"""Log excerpts written for the tests, in the engines' own line formats (the format strings are
cited in fitcalc/core/reconcile/parsers.py). Where a test checks a residual, the figures are real ones
from ../shared/reference/engine-logs.yaml with their sources named; elsewhere the numbers are made
up for the parse checks and say so."""

# vLLM V1 (0.11-style lines; numbers made up for the parse checks).
VLLM_V1 = """\
INFO 03-11 10:00:00 [api_server.py:1805] vLLM API server version 0.11.0
INFO 03-11 10:00:00 [utils.py:328] non-default args: {'model': 'meta-llama/Llama-3.1-8B-Instruct', 'max_model_len': 32768, 'gpu_memory_utilization': 0.92}
INFO 03-11 10:00:02 [scheduler.py:225] Chunked prefill is enabled with max_num_batched_tokens=8192.
(EngineCore_DP0 pid=77) INFO 03-11 10:00:05 [core.py:77] Initializing a V1 LLM engine (v0.11.0) with config: model='meta-llama/Llama-3.1-8B-Instruct', speculative_config=None, tokenizer='meta-llama/Llama-3.1-8B-Instruct', dtype=torch.bfloat16, max_seq_len=32768, download_dir=None, load_format=auto, tensor_parallel_size=1, pipeline_parallel_size=1, quantization=None, enforce_eager=False, kv_cache_dtype=auto, device_config=cuda, compilation_config={'level': 3, 'cudagraph_capture_sizes': [512, 256]}
(EngineCore_DP0 pid=77) INFO 03-11 10:00:20 [gpu_model_runner.py:2653] Model loading took 14.9596 GiB and 5.210000 seconds
(EngineCore_DP0 pid=77) INFO 03-11 10:00:31 [gpu_worker.py:298] Available KV cache memory: 53.17 GiB
(EngineCore_DP0 pid=77) INFO 03-11 10:00:31 [kv_cache_utils.py:1087] GPU KV cache size: 435,584 tokens
(EngineCore_DP0 pid=77) INFO 03-11 10:00:31 [kv_cache_utils.py:1091] Maximum concurrency for 32,768 tokens per request: 13.29x
(EngineCore_DP0 pid=77) INFO 03-11 10:00:38 [gpu_model_runner.py:3480] Graph capturing finished in 6 secs, took 0.52 GiB
"""

# vLLM V1 0.15.1 on an A100 40GB, Llama-3.1-8B-Instruct BF16, enforce_eager: the real figures of
# ilseokoh/vllm-gce README.md (engine-logs.yaml), prefixes shortened.
VLLM_V1_A100 = """\
INFO 02-06 03:33:17 [model.py:1561] Using max model len 131072
INFO 02-06 03:33:17 [scheduler.py:226] Chunked prefill is enabled with max_num_batched_tokens=8192.
INFO 02-06 03:33:18 [core.py:96] Initializing a V1 LLM engine (v0.15.1) with config: model='/models/Meta-Llama-3.1-8B-Instruct', dtype=torch.bfloat16, max_seq_len=131072, tensor_parallel_size=1, pipeline_parallel_size=1, quantization=None, enforce_eager=True, kv_cache_dtype=auto
INFO 02-06 03:33:32 [gpu_model_runner.py:4130] Model loading took 14.99 GiB memory and 6.720924 seconds
INFO 02-06 03:33:33 [gpu_worker.py:356] Available KV cache memory: 19.28 GiB
INFO 02-06 03:33:33 [kv_cache_utils.py:1307] GPU KV cache size: 157,936 tokens
INFO 02-06 03:33:33 [kv_cache_utils.py:1312] Maximum concurrency for 131,072 tokens per request: 1.20x
"""

# vLLM V0 0.6.4 one-line profile (worker.py) with the "GB" weights line; numbers made up.
VLLM_V0_PAIRS = """\
INFO 11-25 08:01:02 llm_engine.py:249] Initializing an LLM engine (v0.6.4.post1) with config: model='meta-llama/Llama-3.1-8B-Instruct', dtype=torch.bfloat16, max_seq_len=8192, tensor_parallel_size=1, quantization=None, enforce_eager=False, kv_cache_dtype=auto
INFO 11-25 08:01:40 model_runner.py:1077] Loading model weights took 14.9888 GB
INFO 11-25 08:01:42 worker.py:232] Memory profiling results: total_gpu_memory=79.10GiB initial_memory_usage=15.40GiB peak_torch_memory=16.20GiB memory_usage_post_profile=15.45GiB non_torch_memory=0.40GiB kv_cache_size=54.59GiB gpu_memory_utilization=0.90
INFO 11-25 08:01:42 gpu_executor.py:113] # GPU blocks: 27950, # CPU blocks: 2048
INFO 11-25 08:01:42 gpu_executor.py:117] Maximum concurrency for 8192 tokens per request: 54.59x
"""

# vLLM V0 0.6.5 one value per line (worker.py after PR #10511); numbers made up.
VLLM_V0_LINES = """\
INFO 12-20 19:54:10 model_runner.py:1094] Loading model weights took 14.9595 GB
INFO 12-20 19:54:18 worker.py:243] Memory profiling results:
INFO 12-20 19:54:18 worker.py:243] duration     0.75 seconds
INFO 12-20 19:54:18 worker.py:243] total_gpu_memory     79.22GiB
INFO 12-20 19:54:18 worker.py:243] gpu_memory_utilization       0.90
INFO 12-20 19:54:18 worker.py:243] the current vLLM instance can use    71.29GiB
INFO 12-20 19:54:18 worker.py:243] model weights take   14.96GiB
INFO 12-20 19:54:18 worker.py:243] non_torch_memory     1.79GiB
INFO 12-20 19:54:18 worker.py:243] PyTorch activation peak memory       1.26GiB
INFO 12-20 19:54:18 worker.py:243] available_kv_cache_memory    53.29GiB
INFO 12-20 19:54:18 executor_base.py:92] # CUDA blocks: 27284, # CPU blocks: 2048
INFO 12-20 19:54:18 executor_base.py:96] Maximum concurrency for 8192 tokens per request: 53.29x
"""

# vLLM V0 0.7-0.8 sentence (worker.py after PR #12126), colour codes as journald writes them;
# numbers made up.
VLLM_V0_SENTENCE = """\
INFO 05-21 18:17:01 [model_runner.py:1146] Model loading took 7.5552 GiB and 30.643008 seconds
#033[1;36m(VllmWorkerProcess pid=240)#033[0;0m INFO 05-21 18:17:06 [worker.py:267] Memory profiling takes 5.29 seconds
INFO 05-21 18:17:06 [worker.py:267] the current vLLM instance can use total_gpu_memory (23.65GiB) x gpu_memory_utilization (0.95) = 22.47GiB
INFO 05-21 18:17:06 [worker.py:267] model weights take 7.56GiB; non_torch_memory takes 0.04GiB; PyTorch activation peak memory takes 0.74GiB; the rest of the memory reserved for KV Cache is 14.13GiB.
INFO 05-21 18:17:06 [executor_base.py:112] # cuda blocks: 6430, # CPU blocks: 1820
INFO 05-21 18:17:06 [executor_base.py:117] Maximum concurrency for 10000 tokens per request: 10.29x
INFO 05-21 18:17:40 [model_runner.py:1562] Graph capturing finished in 34 secs, took 0.58 GiB
"""

# llama-server build 6699, gpt-oss-20b MXFP4, -ngl 99 --n-cpu-moe 99 -c 131072 -fa on, RTX 3070:
# the figures of ikawrakow/ik_llama.cpp#822 (engine-logs.yaml) in that build's line formats.
LLAMA_GPT_OSS = """\
ggml_cuda_init: found 1 CUDA devices:
  Device 0: NVIDIA GeForce RTX 3070, compute capability 8.6, VMM: yes
build: 6699 (c08002a1) with cc (GCC) 14.3.1 20250808 (Red Hat 14.3.1-3) for x86_64-redhat-linux
llama_model_load_from_file_impl: using device CUDA0 (NVIDIA GeForce RTX 3070) (0000:01:00.0) - 7672 MiB free
llama_model_loader: loaded meta data with 35 key-value pairs and 459 tensors from gpt-oss-20b-mxfp4.gguf (version GGUF V3 (latest))
print_info: file type   = MXFP4 MoE
print_info: file size   = 11.27 GiB (4.63 BPW)
print_info: n_embd           = 2880
print_info: n_layer          = 24
print_info: n_head_kv        = 8
print_info: n_swa            = 128
print_info: general.name     = Gpt Oss 20b
print_info: n_vocab          = 201088
load_tensors: loading model tensors, this can take a while... (mmap = true)
load_tensors: offloaded 25/25 layers to GPU
load_tensors:        CUDA0 model buffer size =  1242.03 MiB
load_tensors:   CPU_Mapped model buffer size = 10949.33 MiB
llama_context: n_seq_max     = 1
llama_context: n_ctx         = 131072
llama_context: n_ctx_per_seq = 131072
llama_context: n_batch       = 2048
llama_context: n_ubatch      = 512
llama_context: flash_attn    = enabled
llama_context:  CUDA_Host  output buffer size =     0.77 MiB
llama_kv_cache_iswa: creating non-SWA KV cache, size = 131072 cells
llama_kv_cache:      CUDA0 KV buffer size =  3072.00 MiB
llama_kv_cache: size = 3072.00 MiB (131072 cells,  12 layers,  1/1 seqs), K (f16): 1536.00 MiB, V (f16): 1536.00 MiB
llama_kv_cache_iswa: creating     SWA KV cache, size = 768 cells
llama_kv_cache:      CUDA0 KV buffer size =    18.00 MiB
llama_kv_cache: size =   18.00 MiB (   768 cells,  12 layers,  1/1 seqs), K (f16):    9.00 MiB, V (f16):    9.00 MiB
llama_context:      CUDA0 compute buffer size =   456.98 MiB
llama_context:  CUDA_Host compute buffer size =   263.15 MiB
"""

# llama.cpp of mid-2024 (llm_load_tensors / llama_new_context_with_model / KV self size), partial
# offload: Llama-3.1-8B Q4_K_M with -ngl 29 of 33, -c 4096. The KV figures are hand arithmetic:
# 4096 cells × (2 × 8 × 128 × 2 B) = 16 MiB per layer; 29 layers on CUDA0 = 464 MiB, 3 on the CPU
# = 48 MiB. The weight buffers are made up (the tests check the placement, not them).
LLAMA_OLD_PARTIAL = """\
llama_model_loader: loaded meta data with 29 key-value pairs and 292 tensors from /models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf (version GGUF V3 (latest))
llm_load_print_meta: n_layer          = 32
llm_load_print_meta: model ftype      = Q4_K - Medium
llm_load_print_meta: model size       = 4.58 GiB (4.89 BPW)
llm_load_print_meta: general.name     = Meta Llama 3.1 8B Instruct
llm_load_tensors: offloading 29 repeating layers to GPU
llm_load_tensors: offloaded 29/33 layers to GPU
llm_load_tensors:        CPU buffer size =  1100.00 MiB
llm_load_tensors:      CUDA0 buffer size =  3590.00 MiB
llama_new_context_with_model: n_ctx      = 4096
llama_new_context_with_model: n_batch    = 2048
llama_new_context_with_model: n_ubatch   = 512
llama_new_context_with_model: flash_attn = 0
llama_kv_cache_init:      CUDA0 KV buffer size =   464.00 MiB
llama_kv_cache_init:        CPU KV buffer size =    48.00 MiB
llama_new_context_with_model: KV self size  =  512.00 MiB, K (f16):  256.00 MiB, V (f16):  256.00 MiB
llama_new_context_with_model:  CUDA_Host  output buffer size =     0.49 MiB
llama_new_context_with_model:      CUDA0 compute buffer size =   296.00 MiB
llama_new_context_with_model:  CUDA_Host compute buffer size =    16.01 MiB
"""

# Ollama 0.5.4 with its llama runner: Llama-3.1-8B-Instruct Q4_K_M + LoRA, --ctx-size 8192
# --parallel 4, RTX 4090. The figures are those of MagicWand18/Securetag-AI-Agent
# runpod-deploy/logcompleto.md (engine-logs.yaml); lines shortened.
OLLAMA_RUNNER = """\
time=2025-12-01T20:28:45.620Z level=INFO source=routes.go:1310 msg="Listening on [::]:11434 (version 0.5.4-0-g2ddc32d-dirty)"
time=2025-12-01T20:28:45.760Z level=INFO source=types.go:131 msg="inference compute" id=GPU-93e0 library=cuda variant=v12 compute=8.9 driver=12.4 name="NVIDIA GeForce RTX 4090" total="23.6 GiB" available="23.3 GiB"
time=2025-12-01T20:28:54.084Z level=INFO source=memory.go:356 msg="offload to cuda" layers.requested=-1 layers.model=33 layers.offload=33 layers.split="" memory.available="[23.3 GiB]" memory.gpu_overhead="0 B" memory.required.full="6.5 GiB" memory.required.partial="6.5 GiB" memory.required.kv="1.0 GiB" memory.required.allocations="[6.5 GiB]" memory.weights.total="4.9 GiB" memory.weights.repeating="4.5 GiB" memory.weights.nonrepeating="411.0 MiB" memory.graph.full="560.0 MiB" memory.graph.partial="677.5 MiB"
time=2025-12-01T20:28:54.084Z level=INFO source=server.go:376 msg="starting llama server" cmd="/usr/lib/ollama/runners/cuda_v12_avx/ollama_llama_server runner --model /blobs/sha256-667b --ctx-size 8192 --batch-size 512 --n-gpu-layers 33 --lora /blobs/sha256-2715 --threads 24 --parallel 4 --port 46753"
llama_load_model_from_file: using device CUDA0 (NVIDIA GeForce RTX 4090) - 23818 MiB free
llama_model_loader: - kv   2:                               general.name str              = Meta Llama 3.1 8B Instruct
llm_load_print_meta: n_layer          = 32
llm_load_print_meta: model ftype      = Q4_K - Medium
llm_load_print_meta: model size       = 4.58 GiB (4.89 BPW)
llm_load_tensors: offloaded 33/33 layers to GPU
llm_load_tensors:          CPU model buffer size =   281.81 MiB
llm_load_tensors:        CUDA0 model buffer size =  4403.49 MiB
llama_new_context_with_model: n_seq_max     = 4
llama_new_context_with_model: n_ctx         = 8192
llama_new_context_with_model: n_ctx_per_seq = 2048
llama_new_context_with_model: n_batch       = 2048
llama_new_context_with_model: n_ubatch      = 512
llama_new_context_with_model: flash_attn    = 0
llama_kv_cache_init:      CUDA0 KV buffer size =  1024.00 MiB
llama_new_context_with_model: KV self size  = 1024.00 MiB, K (f16):  512.00 MiB, V (f16):  512.00 MiB
llama_new_context_with_model:  CUDA_Host  output buffer size =     2.02 MiB
llama_new_context_with_model:      CUDA0 compute buffer size =   560.00 MiB
llama_new_context_with_model:  CUDA_Host compute buffer size =    24.01 MiB
llama_lora_adapter_init_internal:      CUDA0 LoRA buffer size =   160.00 MiB
time=2025-12-01T20:28:55.592Z level=INFO source=server.go:594 msg="llama runner started in 1.51 seconds"
llm_load_print_meta: model ftype      = all F32
"""

# Ollama's Go engine (0.12-style device.go lines, journald prefixes); Llama-3.1-8B Q4_K_M,
# num_ctx 2048 × 4. Sizes are HumanBytes2 roundings of the runner figures above.
OLLAMA_ENGINE = """\
Oct 22 02:17:50 box ollama[901]: time=2025-10-22T02:17:50.100Z level=INFO source=routes.go:1511 msg="Listening on 127.0.0.1:11434 (version 0.12.6)"
Oct 22 02:17:50 box ollama[901]: time=2025-10-22T02:17:50.300Z level=INFO source=types.go:42 msg="inference compute" id=GPU-1a2b library=CUDA compute=8.9 name=CUDA0 description="NVIDIA GeForce RTX 4090" libdirs=ollama,cuda_v12 driver=12.8 type=discrete total="24.0 GiB" available="23.5 GiB"
Oct 22 02:17:57 box ollama[901]: time=2025-10-22T02:17:57.900Z level=INFO source=runner.go:1171 msg=load request="{Operation:commit LoraPath:[] Parallel:4 BatchSize:512 FlashAttention:false KvSize:8192 KvCacheType: NumThreads:8 GPULayers:33[ID:GPU-1a2b Layers:33(0..32)] MultiUserCache:false ProjectorPath: MainGPU:0 UseMmap:false}"
Oct 22 02:17:58 box ollama[901]: time=2025-10-22T02:17:58.181Z level=INFO source=ggml.go:494 msg="offloaded 33/33 layers to GPU"
Oct 22 02:17:58 box ollama[901]: time=2025-10-22T02:17:58.181Z level=INFO source=device.go:206 msg="model weights" device=CUDA0 size="4.3 GiB"
Oct 22 02:17:58 box ollama[901]: time=2025-10-22T02:17:58.181Z level=INFO source=device.go:211 msg="model weights" device=CPU size="281.8 MiB"
Oct 22 02:17:58 box ollama[901]: time=2025-10-22T02:17:58.181Z level=INFO source=device.go:217 msg="kv cache" device=CUDA0 size="1.0 GiB"
Oct 22 02:17:58 box ollama[901]: time=2025-10-22T02:17:58.181Z level=INFO source=device.go:228 msg="compute graph" device=CUDA0 size="560.0 MiB"
Oct 22 02:17:58 box ollama[901]: time=2025-10-22T02:17:58.181Z level=INFO source=device.go:233 msg="compute graph" device=CPU size="8.0 MiB"
Oct 22 02:17:58 box ollama[901]: time=2025-10-22T02:17:58.181Z level=INFO source=device.go:238 msg="total memory" size="6.1 GiB"
"""

NOT_AN_ENGINE = """\
127.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 2326
127.0.0.1 - - [10/Oct/2025:13:55:37 +0000] "GET /favicon.ico HTTP/1.1" 404 153
2025/10/10 13:55:38 [error] 1234#0: *1 open() "/usr/share/nginx/html/x" failed (2: No such file or directory)
"""

# A vLLM log that stops before the memory lines (the engine crashed while loading).
VLLM_NO_MEMORY = """\
INFO 03-11 10:00:00 [api_server.py:1805] vLLM API server version 0.11.0
INFO 03-11 10:00:02 [scheduler.py:225] Chunked prefill is enabled with max_num_batched_tokens=8192.
(EngineCore_DP0 pid=77) INFO 03-11 10:00:05 [core.py:77] Initializing a V1 LLM engine (v0.11.0) with config: model='meta-llama/Llama-3.1-8B-Instruct', max_seq_len=32768, tensor_parallel_size=1
(EngineCore_DP0 pid=77) INFO 03-11 10:00:06 [gpu_model_runner.py:2602] Starting to load model meta-llama/Llama-3.1-8B-Instruct...
"""
