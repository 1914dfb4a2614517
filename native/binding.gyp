{
  "targets": [
    {
      "target_name": "openelm_native",
      "sources": ["openelm_native.c"],
      "cflags": ["-O3", "-std=gnu11", "-Wall"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldl"]
    }
  ]
}
