//! Bad input: every case under engine/tests/broken/ (see its README) runs the real binary and
//! must exit with 2, print its expected message fragments and not panic; and a property test
//! feeds thousands of mutated YAML documents through the config, scenario, dataset and pack
//! loaders, none of which may panic.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use oci_conform::diag::Diagnostics;
use oci_conform::{config, content, dataset, pack, plan, scenario, yaml};

use common::{bin, root, TempDir};

#[test]
fn every_broken_input_is_reported_with_its_message_and_exit_code_2() {
    let cases_dir = root().join("engine/tests/broken");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "the broken inputs are missing");
    let mut problems = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let work = TempDir::new("broken");
        common::copy_dir(case, &work.0);
        let args = std::fs::read_to_string(case.join("cmd"))
            .unwrap_or_else(|_| panic!("{name}: no `cmd` file"));
        let expected = std::fs::read_to_string(case.join("expected.txt"))
            .unwrap_or_else(|_| panic!("{name}: no `expected.txt`"));
        let mut cmd = Command::new(bin());
        cmd.current_dir(&work.0).args(args.split_whitespace());
        for (k, _) in std::env::vars() {
            if k.starts_with("OCI_") {
                cmd.env_remove(k);
            }
        }
        // A case that wrongly gets past loading fails fast against a closed port.
        cmd.env("NO_COLOR", "1").env("OCI_REGISTRY", "127.0.0.1:9");
        if let Ok(env) = std::fs::read_to_string(case.join("env")) {
            for line in env.lines().filter(|l| !l.trim().is_empty()) {
                let (k, v) = line.split_once('=').expect("env lines are KEY=VALUE");
                cmd.env(k, v);
            }
        }
        let out = cmd.output().expect("run oci-conform");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.code() != Some(2) {
            problems.push(format!(
                "{name}: exit {:?}, not 2:\n{text}",
                out.status.code()
            ));
            continue;
        }
        if text.contains("panicked") || text.contains("RUST_BACKTRACE") {
            problems.push(format!("{name}: panicked:\n{text}"));
            continue;
        }
        for frag in expected.lines().filter(|l| !l.trim().is_empty()) {
            if !text.contains(frag) {
                problems.push(format!("{name}: `{frag}` not in:\n{text}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A small deterministic generator (xorshift64*), so a failing input can be reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Keys the loaders know (and a few they do not), to build plausible but wrong documents.
const KEYS: &[&str] = &[
    "name",
    "steps",
    "items",
    "use",
    "with",
    "vars",
    "for_each",
    "when",
    "request",
    "expect",
    "status",
    "headers",
    "body",
    "json",
    "content",
    "text",
    "random",
    "generated",
    "tar",
    "files",
    "gzip",
    "capture",
    "set",
    "retry",
    "unsupported",
    "then",
    "reason",
    "creates",
    "deletes",
    "schemaVersion",
    "api",
    "spec",
    "req",
    "level",
    "cleanup",
    "export",
    "skip_unless",
    "requires",
    "data",
    "params",
    "corrupt",
    "append",
    "push",
    "method",
    "url",
    "query",
    "registry",
    "tls",
    "apis",
    "pull",
    "blobs",
    "requestTimeout",
    "roData",
    "tags",
    "cacheAuth",
    "$schema",
    "<<",
    "bogus",
    "x-extra",
    "",
];

/// Values of every YAML kind, plus templates that are wrong, huge or odd.
const VALUES: &[&str] = &[
    "~",
    "null",
    "true",
    "no",
    "[]",
    "{}",
    "[[[]]]",
    "{a: {b: {c: 1}}}",
    "-1",
    "0",
    "7",
    "99999999999999",
    "18446744073709551616",
    "1e400",
    "0x1F",
    ".inf",
    "-.nan",
    "\"{{ x }}\"",
    "\"{{\"",
    "\"}}\"",
    "\"{% if %}\"",
    "\"{{ 1/0 }}\"",
    "\"{{ range(99999999) | list }}\"",
    "\"{{ repeat('a', 99999999999) }}\"",
    "\"{{ chunks(99999999999, 1) }}\"",
    "\"{{ 'x' | digest('md5') }}\"",
    "\"{{ config.nope.deeper }}\"",
    "'{{ repo }}'",
    "!!binary aGVsbG8=",
    "!!str 5",
    "!!int x",
    "&a [1, 2]",
    "*a",
    "*nope",
    "\"\\u0000\"",
    "\"é ü 漢 🙂\"",
    "|\n  block\n  text",
    ">\n  folded",
    "'unterminated",
    "\"unterminated",
    "- item",
    "? key",
    "@reserved",
    "`back",
    "GET",
    "DELETE",
    "/v2/",
    "sha256:abc",
    "MUST",
    "SHOULD",
    "[200, 201]",
    "{content: nope}",
    "{json: [1]}",
    "{random: -5}",
    "{random: 99999999999999}",
    "{generated: 18446744073709551615}",
    "{tar: {files: [{name: a, random: 3}]}}",
    "\"{{ items('*') }}\"",
];

/// One mutation of a YAML text.
fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let at = rng.below(lines.len());
    match rng.below(10) {
        // flip a byte (may leave invalid UTF-8)
        0 => {
            let mut b = text.as_bytes().to_vec();
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            return b;
        }
        // truncate
        1 => {
            let b = text.as_bytes();
            return b[..rng.below(b.len() + 1)].to_vec();
        }
        // a new key with a random value, at a random depth
        2 => {
            let indent = " ".repeat(2 * rng.below(5));
            let line = format!("{indent}{}: {}", rng.pick(KEYS), rng.pick(VALUES));
            lines.insert(at, line);
        }
        // replace a value
        3 => {
            if let Some((k, _)) = lines[at].clone().split_once(": ") {
                lines[at] = format!("{k}: {}", rng.pick(VALUES));
            }
        }
        // rename a key
        4 => {
            if let Some((k, v)) = lines[at].clone().split_once(':') {
                let indent: String = k.chars().take_while(|c| *c == ' ' || *c == '-').collect();
                lines[at] = format!("{indent}{}:{v}", rng.pick(KEYS));
            }
        }
        // delete or duplicate a line
        5 => {
            lines.remove(at);
        }
        6 => {
            let l = lines[at].clone();
            lines.insert(at, l);
        }
        // shift a line's indentation
        7 => {
            lines[at] = if rng.below(2) == 0 {
                format!("  {}", lines[at])
            } else {
                lines[at].trim_start().to_string()
            };
        }
        // nest a value deeper (or much too deep)
        8 => {
            let depth = if rng.below(8) == 0 {
                70
            } else {
                1 + rng.below(6)
            };
            if let Some((k, v)) = lines[at].clone().split_once(": ") {
                let (open, close) = if rng.below(2) == 0 {
                    ("[", "]")
                } else {
                    ("{a: ", "}")
                };
                lines[at] = format!("{k}: {}{v}{}", open.repeat(depth), close.repeat(depth));
            }
        }
        // swap two lines
        _ => {
            let other = rng.below(lines.len());
            lines.swap(at, other);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

/// YAML files under `dir` (recursively).
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

/// Runs `f`, turning a panic into a failure record with the input that caused it.
fn guard(what: &str, input: &[u8], failures: &mut Vec<String>, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_default();
        failures.push(format!(
            "{what} panicked ({msg}) on:\n{}",
            String::from_utf8_lossy(input)
        ));
    }
}

const CONFIG_SEEDS: &[&str] = &[
    "registry: localhost:5000\ntls: disabled\nrepo1: a/b\nrepo2: c/d\nusername: u\npassword: p\n",
    "apis:\n  pull: true\n  blobs:\n    atomic: false\n    delete: true\n  tags:\n    list: false\ndata:\n  image: false\n",
    "roData:\n  tags: [a, b]\n  blobs:\n    - sha256:abc\nrequestTimeout: 5\nseed: 7\nversion: \"1.1\"\n",
    "cacheAuth: false\nfilterTest: ping\nresultsDir: out\nlargeBlobSize: 10\ntlsCAFile: ca.pem\n",
];

#[test]
fn loaders_never_panic_on_mutated_input() {
    // The binary reads YAML on its main thread (8 MiB of stack); give the loaders the same.
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(fuzz_loaders)
        .unwrap()
        .join()
        .unwrap();
}

fn fuzz_loaders() {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0c1_c0f0);
    let rounds: usize = std::env::var("FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let mut rng = Rng(seed | 1);
    let repo = root();
    let mut files = Vec::new();
    for d in [
        "specs",
        "datasets",
        "engine/tests/packs",
        "engine/tests/broken",
    ] {
        yaml_files(&repo.join(d), &mut files);
    }
    files.sort();
    let is_dataset = |p: &Path| {
        p.components().any(|c| c.as_os_str() == "datasets")
            || p.file_name()
                .is_some_and(|n| n == "content.yaml" || n == "data.yaml")
    };
    let datasets: Vec<(PathBuf, String)> = files
        .iter()
        .filter(|p| is_dataset(p))
        .filter_map(|p| Some((p.clone(), std::fs::read_to_string(p).ok()?)))
        .collect();
    let scenarios: Vec<(PathBuf, String)> = files
        .iter()
        .filter(|p| !is_dataset(p) && p.file_name().is_some_and(|n| n != "pack.yaml"))
        .filter(|p| !p.ends_with("oci-conformance.yaml"))
        .filter_map(|p| Some((p.clone(), std::fs::read_to_string(p).ok()?)))
        .collect();
    assert!(datasets.len() >= 3 && scenarios.len() >= 10);

    // The shipped pack, loaded once, for planning with mutated configurations.
    let shipped = pack::load(&repo.join("specs/1.1")).expect("the shipped pack loads");
    let work = TempDir::new("fuzz");
    let config_path = work.join("oci-conformance.yaml");
    let env: IndexMap<String, String> = [(
        "OCI_CONFIGURATION".to_string(),
        config_path.display().to_string(),
    )]
    .into_iter()
    .collect();

    // The guard does catch panics (so a quiet run means no loader panicked).
    let mut probe = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    guard("probe", b"", &mut probe, || panic!("probe"));
    std::panic::set_hook(hook);
    assert_eq!(probe.len(), 1);

    // One loader for all rounds: the files a mutated document `use`s are read once.
    let mut loader = pack::Loader::default();
    let mut failures = Vec::new();
    // documents tried per loader, and how many got through it (so mutations do reach the
    // code behind the parser): scenarios, datasets, configs, plans
    let mut tried = [0usize; 3];
    let mut accepted = [0usize; 4];
    let mut planned = 0;
    let t0 = Instant::now();
    for round in 0..rounds {
        // Mostly one mutation, so many documents stay close to valid and reach deep code.
        let times = [1, 1, 1, 1, 2, 2, 3, 4][rng.below(8)];
        match round % 4 {
            0 | 1 => {
                let (path, text) = &scenarios[rng.below(scenarios.len())];
                let mut doc = text.as_bytes().to_vec();
                for _ in 0..times {
                    doc = mutate(&mut rng, &String::from_utf8_lossy(&doc));
                }
                guard("scenario loader", &doc, &mut failures, || {
                    let text = String::from_utf8_lossy(&doc);
                    if let Ok(node) = yaml::parse(path, &text) {
                        loader.diags = Diagnostics::default();
                        if scenario::compile_node(&node, &mut loader).is_ok() {
                            accepted[0] += 1;
                        }
                    }
                });
                tried[0] += 1;
            }
            2 => {
                let (path, text) = &datasets[rng.below(datasets.len())];
                let mut doc = text.as_bytes().to_vec();
                for _ in 0..times {
                    doc = mutate(&mut rng, &String::from_utf8_lossy(&doc));
                }
                guard("dataset loader", &doc, &mut failures, || {
                    let text = String::from_utf8_lossy(&doc);
                    let Ok(node) = yaml::parse(path, &text) else {
                        return;
                    };
                    loader.diags = Diagnostics::default();
                    let Ok(spec) = dataset::compile(&node, &mut loader) else {
                        return;
                    };
                    accepted[1] += 1;
                    let store = content::Store::default();
                    let cx = dataset::GenContext {
                        seed: 1,
                        store: &store,
                        globals: IndexMap::new(),
                    };
                    let _ = dataset::generate(&spec, None, None, &IndexMap::new(), &cx);
                });
                tried[1] += 1;
            }
            _ => {
                let seed_doc = CONFIG_SEEDS[rng.below(CONFIG_SEEDS.len())];
                let mut doc = seed_doc.as_bytes().to_vec();
                for _ in 0..times {
                    doc = mutate(&mut rng, &String::from_utf8_lossy(&doc));
                }
                std::fs::write(&config_path, &doc).unwrap();
                let filter = rng.pick(&["", "ping", "image/", "sha256 blobs/post", "nope//x"]);
                guard("config loader", &doc, &mut failures, || {
                    let Ok(sources) = config::gather(&env, &work.0, serde_json::json!({})) else {
                        return;
                    };
                    let Ok(cfg) = config::resolve(&sources, &shipped.defaults, "1.1") else {
                        return;
                    };
                    accepted[2] += 1;
                    // Planning generates every data set (a third of a second in a debug
                    // build): one accepted configuration in 16.
                    if accepted[2] % 16 == 1 {
                        planned += 1;
                        if plan::build(&shipped, &cfg, &[filter.to_string()], 1).is_ok() {
                            accepted[3] += 1;
                        }
                    }
                });
                tried[2] += 1;
            }
        }
    }
    let elapsed = t0.elapsed();
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(5)].join("\n\n")
    );
    eprintln!("fuzz: tried {tried:?}, accepted {accepted:?} ({planned} planned) in {elapsed:?}");
    // A good share of the mutants still load, so the code after the parser is exercised.
    let out_of = [tried[0], tried[1], tried[2], planned];
    for (i, what) in ["scenarios", "datasets", "configs", "plans"]
        .iter()
        .enumerate()
    {
        assert!(
            accepted[i] * 20 >= out_of[i],
            "too few {what} got through: tried {tried:?}, accepted {accepted:?}"
        );
    }
    assert!(
        elapsed < Duration::from_secs(60),
        "{rounds} rounds took {elapsed:?}"
    );
}
