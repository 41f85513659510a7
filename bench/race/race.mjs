// The llama.cpp side of the race (scripts/race.sh), and the race's summary table.
//
//   node race.mjs measure -m MODEL.gguf [-p 512] [-n 64] [-t 2] [--reps 1] [--warmup 1] [--seed 0]
//       Runs the real llama.cpp (the prebuilt CPU libraries of node-llama-cpp's linux-x64
//       package; GPU backends off, never built from source) on MODEL with T threads, and
//       prints one JSON object per line and repetition on stdout:
//       prefill = P prompt tokens in one batch (llama_decode of P tokens),
//       decode  = N single-token llama_decode steps after the prompt, greedy, no EOS stop.
//       Token ids are seeded pseudo-random (the engines' speed does not depend on them).
//       Figures are llama.cpp's own timers (llama_perf_context, what llama-bench reports);
//       the JavaScript-side wall clock (which adds the binding's overhead) is given too.
//
//   node race.mjs summarize RESULTS.jsonl [--json]
//       Reads the lines written by scripts/race.sh ({"engine":"h2o"|"llama.cpp","model":...,
//       "prefill":tok/s,"decode":tok/s}, and one "machine" line) and prints, per model, the
//       median of each engine, the ratio h2o / llama.cpp and decode's share of the triad.
import fs from "node:fs";
import path from "node:path";

function parseArgs(argv) {
  const opts = {_: []};
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const take = () => {
      if (i + 1 >= argv.length) throw new Error(`${a}: missing value`);
      return argv[++i];
    };
    switch (a) {
      case "-m": case "--model": opts.model = take(); break;
      case "-p": case "--n-prompt": opts.nPrompt = Number(take()); break;
      case "-n": case "--n-gen": opts.nGen = Number(take()); break;
      case "-t": case "--threads": opts.threads = Number(take()); break;
      case "-r": case "--reps": opts.reps = Number(take()); break;
      case "--warmup": opts.warmup = Number(take()); break;
      case "-s": case "--seed": opts.seed = Number(take()); break;
      case "--json": opts.json = true; break;
      case "-h": case "--help": opts.help = true; break;
      default:
        if (a.startsWith("-")) throw new Error(`unknown flag ${a}`);
        opts._.push(a);
    }
  }
  return opts;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
};

// xorshift64*: a small seeded generator for the prompt's token ids.
function tokenIds(count, vocab, seed) {
  let x = BigInt.asUintN(64, BigInt(seed) * 0x9E3779B97F4A7C15n + 0x2545F4914F6CDD1Dn);
  const out = [];
  for (let i = 0; i < count; ++i) {
    x ^= x >> 12n; x ^= BigInt.asUintN(64, x << 25n); x ^= x >> 27n;
    const r = BigInt.asUintN(64, x * 0x2545F4914F6CDD1Dn);
    out.push(Number(r % BigInt(vocab)));
  }
  return out;
}

async function measure(o) {
  if (!o.model) throw new Error("measure: -m MODEL is required");
  const nPrompt = o.nPrompt ?? 512, nGen = o.nGen ?? 64, threads = o.threads ?? 2;
  const reps = o.reps ?? 1, warmup = o.warmup ?? 1, seed = o.seed ?? 0;
  if (!(nPrompt >= 1 && nGen >= 1 && threads >= 1 && reps >= 1 && warmup >= 0)) throw new Error("bad -p/-n/-t/--reps/--warmup");

  // Never use a GPU backend nor try to build llama.cpp: the prebuilt CPU binaries only.
  process.env.NODE_LLAMA_CPP_GPU = "false";
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
  const {getLlama, LlamaLogLevel} = await import("node-llama-cpp");

  let perfLines = [];
  const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
    maxThreads: threads, logLevel: LlamaLogLevel.info,
    logger: (level, message) => {
      if (message.includes("llama_perf_context_print")) perfLines.push(message);
      else if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) process.stderr.write(`llama.cpp: ${message}`);
    },
  });
  if (llama.gpu !== false) throw new Error(`expected the CPU build, got gpu=${llama.gpu}`);
  const model = await llama.loadModel({modelPath: o.model, gpuLayers: 0});
  const vocab = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length ?? 32000;
  const prompt = tokenIds(nPrompt, vocab, seed);

  // Which of the prebuilt CPU variants ggml picked for this CPU (for the record).
  let cpuVariant = "?";
  try {
    const maps = fs.readFileSync("/proc/self/maps", "utf8");
    const m = maps.match(/libggml-cpu-[\w-]+\.so/);
    if (m) cpuVariant = m[0];
  } catch {}

  const waitPerf = async () => {
    for (let i = 0; i < 200; ++i) {
      if (perfLines.some((l) => l.includes("prompt eval time")) && perfLines.some((l) => /\beval time/.test(l) && !l.includes("prompt eval")))
        return;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const parsePerf = () => {
    const text = perfLines.join("\n");
    const pe = text.match(/prompt eval time =\s*([\d.]+) ms \/\s*(\d+) tokens/);
    const ev = text.match(/\s eval time =\s*([\d.]+) ms \/\s*(\d+) runs/);
    if (!pe || !ev) throw new Error(`could not read llama.cpp's timings: ${text}`);
    return {promptMs: Number(pe[1]), promptTokens: Number(pe[2]), evalMs: Number(ev[1]), evalRuns: Number(ev[2])};
  };

  const runOnce = async () => {
    const context = await model.createContext({
      contextSize: nPrompt + nGen + 16, batchSize: Math.max(512, nPrompt), sequences: 1,
      threads: {ideal: threads, min: threads}, performanceTracking: true,
    });
    try {
      const seq = context.getSequence();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt);
      const t1 = performance.now();
      let steps = 0;
      // evaluate() decodes the given token, samples (greedy), then decodes each sampled
      // token in turn: nGen iterations = nGen single-token llama_decode calls.
      for await (const _tok of seq.evaluate([prompt[nPrompt - 1]], {temperature: 0})) {
        if (++steps >= nGen) break;
      }
      const t2 = performance.now();
      if (steps !== nGen) throw new Error(`llama.cpp stopped after ${steps} of ${nGen} decode steps`);
      perfLines = [];
      await context.printTimings();
      await waitPerf();
      const perf = parsePerf();
      if (perf.promptTokens !== nPrompt || perf.evalRuns !== nGen)
        throw new Error(`llama.cpp counted ${perf.promptTokens} prompt tokens / ${perf.evalRuns} decode runs, expected ${nPrompt} / ${nGen}`);
      return {
        prefill: nPrompt / (perf.promptMs / 1000),
        decode: nGen / (perf.evalMs / 1000),
        prefill_wall: nPrompt / ((t1 - t0) / 1000),
        decode_wall: nGen / ((t2 - t1) / 1000),
      };
    } finally {
      await context.dispose();
    }
  };

  for (let w = 0; w < warmup; ++w) await runOnce();
  for (let r = 0; r < reps; ++r) {
    const res = await runOnce();
    process.stdout.write(JSON.stringify({
      engine: "llama.cpp", model: path.resolve(o.model), threads, n_prompt: nPrompt, n_gen: nGen,
      ...res, cpu_variant: cpuVariant, llama_cpp_release: llamaCppRelease(),
    }) + "\n");
  }
  await model.dispose();
  await llama.dispose();
}

function llamaCppRelease() {
  try {
    const here = path.dirname(new URL(import.meta.url).pathname);
    const info = JSON.parse(fs.readFileSync(path.join(here, "node_modules/node-llama-cpp/llama/llama.cpp.info.json"), "utf8"));
    const pkg = JSON.parse(fs.readFileSync(path.join(here, "node_modules/node-llama-cpp/package.json"), "utf8"));
    return `${info.llamaCppGithubRepo}@${info.tag} (node-llama-cpp ${pkg.version})`;
  } catch {
    return "?";
  }
}

function summarize(o) {
  const file = o._[1];
  if (!file) throw new Error("summarize: RESULTS.jsonl is required");
  const all = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  const machine = all.find((r) => r.engine === "machine");
  const rows = all.filter((r) => r.engine !== "machine");
  const models = [...new Set(rows.map((r) => r.label ?? r.model))];
  const out = [];
  for (const m of models) {
    const of = (engine, key) => rows.filter((r) => (r.label ?? r.model) === m && r.engine === engine).map((r) => r[key]);
    const h = {prefill: of("h2o", "prefill"), decode: of("h2o", "decode")};
    const l = {prefill: of("llama.cpp", "prefill"), decode: of("llama.cpp", "decode"),
               prefill_wall: of("llama.cpp", "prefill_wall"), decode_wall: of("llama.cpp", "decode_wall")};
    const any = rows.find((r) => (r.label ?? r.model) === m && r.engine === "llama.cpp") ?? {};
    const entry = {model: m, threads: any.threads, n_prompt: any.n_prompt, n_gen: any.n_gen, reps: h.decode.length,
                   cpu_variant: any.cpu_variant, llama_cpp: any.llama_cpp_release};
    for (const k of ["prefill", "decode"]) {
      entry[k] = {h2o: median(h[k]), llama_cpp: median(l[k]), llama_cpp_wall: median(l[`${k}_wall`]),
                  ratio: median(h[k]) / median(l[k]), h2o_values: h[k], llama_cpp_values: l[k]};
    }
    // Decode's share of the triad measured in the same repetitions: bytes per token are the
    // file's weights (+ KV) that h2o's bench counts, the same for both engines.
    const gbs = of("h2o", "decode_gb_per_s"), triads = of("h2o", "triad_gb_per_s").filter((x) => x > 0);
    const bytesPerToken = median(gbs.map((g, i) => g / h.decode[i]));
    const triad = median(triads);
    entry.triad_gb_per_s = triad;
    entry.h2o_fraction_of_triad = median(gbs) / triad;
    entry.llama_cpp_fraction_of_triad = (entry.decode.llama_cpp * bytesPerToken) / triad;
    out.push(entry);
  }
  if (o.json) {
    process.stdout.write(JSON.stringify({machine, models: out}, null, 2) + "\n");
    return;
  }
  const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "-");
  const pct = (x) => (Number.isFinite(x) ? (100 * x).toFixed(1) + "%" : "-");
  const head = ["model", "metric", "h2o tok/s", "llama.cpp tok/s", "ratio", "h2o %triad", "llama %triad"];
  const lines = [head];
  for (const e of out) {
    lines.push([e.model, "prefill", f(e.prefill.h2o), f(e.prefill.llama_cpp), f(e.prefill.ratio, 3) + "x", "", ""]);
    lines.push([e.model, "decode", f(e.decode.h2o), f(e.decode.llama_cpp), f(e.decode.ratio, 3) + "x",
                pct(e.h2o_fraction_of_triad), pct(e.llama_cpp_fraction_of_triad)]);
  }
  const w = head.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  for (const l of lines) console.log(l.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  "));
  const e0 = out[0] ?? {};
  console.log(`\n${e0.threads} threads, prompt ${e0.n_prompt} tok, decode ${e0.n_gen} tok, median of ${e0.reps} alternating runs each; ` +
              `llama.cpp ${e0.llama_cpp}, CPU backend ${e0.cpu_variant}; ratio = h2o / llama.cpp; triad ${f(e0.triad_gb_per_s, 1)} GB/s`);
  if (machine) console.log(`machine: ${machine.cpu}; flags: ${machine.flags}; H2O_SIMD=${machine.h2o_simd}; ${machine.date}`);
}

const opts = parseArgs(process.argv.slice(2));
const cmd = opts._[0];
try {
  if (opts.help || !cmd) {
    console.log("usage: node race.mjs measure -m MODEL [-p N] [-n N] [-t N] [--reps R] [--warmup W] [--seed S]\n" +
                "       node race.mjs summarize RESULTS.jsonl [--json]");
  } else if (cmd === "measure") {
    await measure(opts);
  } else if (cmd === "summarize") {
    summarize(opts);
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
} catch (e) {
  console.error(`race.mjs: ${e.message}`);
  process.exit(1);
}
