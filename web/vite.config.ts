import { defineConfig } from "vite";

// No React plugin (it needs a newer toolchain than this machine's npm): esbuild's automatic
// JSX runtime is all the app needs.
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    rollupOptions: {
      // React Query marks its modules "use client" for server components; irrelevant here.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  server: { proxy: { "/api": "http://127.0.0.1:7878" } },
  test: { environment: "jsdom", include: ["src/**/*.test.{ts,tsx}"] },
});
