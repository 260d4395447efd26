//! `results.yaml`: the official suite's shape (`config`, `apis`, `data`) plus what it lacks —
//! status, counts, seed, versions, timings, one entry per test and leftover content.

use serde_json::{json, Value as J};

use crate::results::RunResult;

/// Renders results.yaml.
pub fn render(r: &RunResult) -> String {
    let mut apis: Vec<(&String, &crate::results::Status)> = r.apis.iter().collect();
    apis.sort_by(|a, b| a.0.cmp(b.0));
    let mut data: Vec<(&String, &crate::results::Status)> = r.data.iter().collect();
    data.sort_by(|a, b| a.0.cmp(b.0));
    let tests: Vec<J> = r
        .root
        .cases()
        .into_iter()
        .map(|c| {
            let mut t = serde_json::to_value(c).unwrap_or(J::Null);
            // Each finding carries the entries it cites: id, level, statement, link.
            for (key, findings) in [("failures", &c.failures), ("warnings", &c.warnings)] {
                for (f, out) in findings.iter().zip(
                    t.get_mut(key)
                        .and_then(J::as_array_mut)
                        .into_iter()
                        .flatten(),
                ) {
                    let cited = super::cited(r, f);
                    if !cited.is_empty() {
                        out["requirements"] = serde_json::to_value(cited).unwrap_or(J::Null);
                    }
                }
            }
            t
        })
        .collect();
    let doc = json!({
        "config": r.config,
        "apis": apis.into_iter().map(|(k, v)| (k.clone(), J::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
        "data": data.into_iter().map(|(k, v)| (k.clone(), J::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
        "status": r.status().as_str(),
        "counts": r.counts(),
        "engine": { "name": "oci-conform", "version": env!("CARGO_PKG_VERSION") },
        "pack": { "specVersion": r.spec_version, "source": r.pack_source, "dir": r.pack_dir, "digest": r.pack_digest },
        "seed": r.seed,
        "registry": r.registry,
        "started": r.started,
        "durationSeconds": (r.duration.as_secs_f64() * 1000.0).round() / 1000.0,
        "parallel": r.parallel,
        // what the tests sent (redirects and token requests included; the final cleanup not)
        "requests": r.root.cases().iter().map(|c| c.exchanges.len()).sum::<usize>(),
        "leftovers": r.leftovers,
        "tests": tests,
    });
    let mut out = String::from("# oci-conform results (the config, apis and data keys follow the official suite's results.yaml)\n");
    out.push_str(
        &serde_saphyr::to_string(&doc)
            .unwrap_or_else(|e| format!("# cannot serialize results: {e}\n")),
    );
    out
}
