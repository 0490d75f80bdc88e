{
  "targets": [
    {
      "target_name": "sendfiled",
      "sources": ["src/addon.c"],
      "include_dirs": ["<!(node -p \"process.env.SENDFILED_INCLUDE_DIR || ''\")"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl"]
    }
  ]
}
