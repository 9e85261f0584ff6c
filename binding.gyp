{
  "targets": [
    {
      "target_name": "klear_native",
      "sources": [
        "native/addon.cc",
        "native/args.cc",
        "native/pool.cc",
        "native/gemm.cc",
        "native/sgemm_avx512.cc",
        "native/norms.cc",
        "native/rope.cc",
        "native/attention.cc",
        "native/elementwise.cc",
        "native/loss.cc",
        "native/optimizer.cc",
        "native/convert.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "/usr/include/x86_64-linux-gnu/openblas-pthread"
      ],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-std=c++17"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}
