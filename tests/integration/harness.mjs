// Shared helpers for the Node integration tests: start a built program on a free port, count checks.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import readline from "node:readline";

const binDirs = [process.env.WEIR_BIN_DIR, process.env.WEIR_TEST_BIN_DIR].filter(Boolean);

export function program(name) {
  for (const dir of binDirs) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`${name} not found in ${binDirs.join(", ")}`);
}

export async function startServer(name, args = []) {
  const proc = spawn(program(name), ["--port", "0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const rl = readline.createInterface({ input: proc.stdout });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not announce its port")), 30000);
    proc.on("exit", (code) => reject(new Error(`${name} exited with ${code}`)));
    rl.on("line", (line) => {
      const m = line.match(/listening on (https?:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return {
    url,
    proc,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return await new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
    },
  };
}

export class Results {
  passed = 0;
  failed = 0;
  async check(name, fn) {
    try {
      await fn();
      this.passed++;
      console.log(`ok   ${name}`);
    } catch (e) {
      this.failed++;
      console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  finish() {
    console.log(`${this.passed} passed, ${this.failed} failed`);
    process.exit(this.failed || !this.passed ? 1 : 0);
  }
}

export function expect(cond, what) {
  if (!cond) throw new Error(typeof what === "string" ? what : JSON.stringify(what));
}

export const chromiumPath = "/usr/bin/chromium";
export const chromiumArgs = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
