//! The CI integration: `action.yml`'s check step runs `scripts/ci-check` with an environment
//! made from the action's inputs. GitHub is not reachable from here, so this test builds that
//! environment from action.yml itself (each `${{ … }}` of the step's `env:` evaluated for the
//! inputs the test gives, defaults for the rest), runs the step's command with it against a
//! real docker-registry, and checks the outputs file, the step summary and the exit code.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use common::registry::Registry;
use common::{bin, root, text, TempDir};

/// The composite action, as JSON.
fn action() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("action.yml")).expect("action.yml");
    serde_saphyr::from_str(&text).expect("action.yml parses")
}

/// Evaluates the expressions the action's `env:` uses: `inputs.NAME`, `github.action_path`,
/// `runner.temp`, `A || B` and `format('…{0}…', X)`.
fn eval(expr: &str, inputs: &HashMap<String, String>, temp: &Path) -> String {
    let expr = expr.trim();
    if let Some((a, b)) = expr.split_once("||") {
        let left = eval(a, inputs, temp);
        return if left.is_empty() {
            eval(b, inputs, temp)
        } else {
            left
        };
    }
    if let Some(args) = expr
        .strip_prefix("format(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (template, arg) = args.split_once(',').expect("format(template, arg)");
        let template = template.trim().trim_matches('\'');
        return template.replace("{0}", &eval(arg, inputs, temp));
    }
    if let Some(name) = expr.strip_prefix("inputs.") {
        return inputs.get(name).cloned().unwrap_or_else(|| {
            panic!("the step uses an input action.yml does not declare: {name}")
        });
    }
    match expr {
        "github.action_path" => root().display().to_string(),
        "runner.temp" => temp.display().to_string(),
        other => panic!("expression not understood by this test: {other}"),
    }
}

/// Substitutes every `${{ … }}` of a value.
fn expand(value: &str, inputs: &HashMap<String, String>, temp: &Path) -> String {
    let re = regex::Regex::new(r"\$\{\{(.*?)\}\}").unwrap();
    re.replace_all(value, |c: &regex::Captures<'_>| eval(&c[1], inputs, temp))
        .into_owned()
}

/// Runs the action's check step with `given` inputs (the rest at their defaults) in `cwd`, as
/// GitHub would: the step's env, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, bash.
/// Returns the process output, the outputs written and the step summary.
fn run_check_step(given: &[(&str, &str)], cwd: &Path) -> (Output, HashMap<String, String>, String) {
    let action = action();
    let mut inputs: HashMap<String, String> = action["inputs"]
        .as_object()
        .expect("inputs")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v["default"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (k, v) in given {
        assert!(inputs.contains_key(*k), "action.yml has no input `{k}`");
        inputs.insert((*k).to_string(), (*v).to_string());
    }
    let steps = action["runs"]["steps"].as_array().expect("steps");
    let step = steps
        .iter()
        .find(|s| s["id"] == "check")
        .expect("a step with id: check");
    assert_eq!(step["shell"], "bash");
    let temp = TempDir::new("runner-temp");
    let mut cmd = Command::new("bash");
    cmd.current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("OCI_") || k.starts_with("GITHUB_") || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in step["env"].as_object().expect("env") {
        cmd.env(k, expand(v.as_str().unwrap_or_default(), &inputs, &temp.0));
    }
    let output_file = temp.join("github_output");
    let summary_file = temp.join("step_summary");
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .env("NO_COLOR", "1");
    let script = expand(step["run"].as_str().expect("run"), &inputs, &temp.0);
    // How GitHub runs a `shell: bash` step.
    let out = cmd
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
        .output()
        .expect("bash");
    let outputs = std::fs::read_to_string(&output_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let summary = std::fs::read_to_string(&summary_file).unwrap_or_default();
    (out, outputs, summary)
}

#[test]
fn the_action_outputs_are_the_declared_ones() {
    let action = action();
    assert_eq!(action["runs"]["using"], "composite");
    let declared: Vec<&str> = action["outputs"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(declared, ["results-dir", "exit-code", "status"]);
    for (name, o) in action["outputs"].as_object().unwrap() {
        assert_eq!(
            o["value"].as_str().unwrap(),
            format!("${{{{ steps.check.outputs.{name} }}}}")
        );
    }
    // Every input reaches the check step (binary through OCI_CONFORM_BIN).
    let step = action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "check")
        .unwrap()
        .clone();
    let env = serde_json::to_string(&step["env"]).unwrap();
    for input in action["inputs"].as_object().unwrap().keys() {
        assert!(
            env.contains(&format!("inputs.{input}")),
            "input {input} is not used"
        );
    }
    assert!(action["inputs"]["password"]["description"]
        .as_str()
        .unwrap()
        .contains("secret"));
}

#[test]
fn the_action_script_checks_docker_registry_and_writes_its_outputs() {
    let reg = Registry::docker();
    let work = TempDir::new("ci-workspace");
    let exe = bin();
    let exe = exe.to_str().unwrap();
    std::fs::write(
        work.join("oci-conformance.yaml"),
        "tls: disabled\nrepo1: ci/one\nrepo2: ci/two\n",
    )
    .unwrap();

    // A group docker-registry fails (500 for a malformed digest): exit code 4, the step fails.
    let failing = [
        ("binary", exe),
        ("config", "oci-conformance.yaml"),
        ("registry", reg.addr.as_str()),
        ("password", "s3cret-ci"),
        ("username", "ci"),
        ("filter", "invalid-digest-format"),
        ("parallel", "2"),
        ("args", "--seed 5 -q"),
    ];
    let (o, out, summary) = run_check_step(&failing, &work.0);
    let log = text(&o);
    assert_eq!(o.status.code(), Some(4), "{log}");
    let results = work.join("oci-conform-results");
    assert_eq!(out["results-dir"], results.display().to_string(), "{log}");
    assert_eq!(out["exit-code"], "4");
    assert_eq!(out["status"], "FAIL");
    let r = common::results(&results);
    assert_eq!(r["status"], "FAIL");
    assert_eq!(r["seed"], 5);
    assert_eq!(r["parallel"], 2);
    assert_eq!(r["config"]["repo1"], "ci/one", "the config file was read");
    assert!(r["tests"].as_array().unwrap().iter().all(|t| t["id"]
        .as_str()
        .unwrap()
        .starts_with("invalid-digest-format")));
    assert!(
        summary.contains("### OCI conformance: FAIL (exit code 4)"),
        "{summary}"
    );
    assert!(summary.contains("  FAIL: "), "{summary}");
    // The password is masked for GitHub and appears nowhere else.
    assert!(log.contains("::add-mask::s3cret-ci"), "{log}");
    assert_eq!(log.matches("s3cret-ci").count(), 1, "{log}");
    assert!(!summary.contains("s3cret-ci"));
    for f in ["results.yaml", "junit.xml", "report.html"] {
        let t = std::fs::read_to_string(results.join(f)).unwrap();
        assert!(!t.contains("s3cret-ci"), "{f}");
    }

    // fail-on: error lets a FAIL through (and says what it was); never lets anything through.
    let (o, out, _) = run_check_step(
        &[&failing[..], &[("fail-on", "error"), ("results-dir", "r2")]].concat(),
        &work.0,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(out["exit-code"], "4");
    assert_eq!(out["results-dir"], work.join("r2").display().to_string());

    // Bad input is not a FAIL: code 2, which fail-on: error still fails on.
    let (o, out, summary) = run_check_step(
        &[
            ("binary", exe),
            ("registry", reg.addr.as_str()),
            ("tls", "maybe"),
            ("fail-on", "error"),
        ],
        &work.0,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(out["exit-code"], "2");
    assert_eq!(out["status"], "", "no results written");
    assert!(summary.contains("no results"), "{summary}");
    let (o, out, _) = run_check_step(
        &[
            ("binary", exe),
            ("registry", reg.addr.as_str()),
            ("tls", "maybe"),
            ("fail-on", "never"),
        ],
        &work.0,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(out["exit-code"], "2");

    // A group docker-registry passes: exit 0, status Pass; the inputs win over the file.
    let (o, out, _) = run_check_step(
        &[
            ("binary", exe),
            ("config", "oci-conformance.yaml"),
            ("registry", reg.addr.as_str()),
            ("repo1", "ci/input"),
            ("spec-version", "1.0"),
            ("filter", "sha256 blobs/post+put"),
            ("results-dir", "r3"),
        ],
        &work.0,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(out["exit-code"], "0");
    assert_eq!(out["status"], "Pass");
    let r = common::results(&work.join("r3"));
    assert_eq!(r["config"]["repo1"], "ci/input");
    assert_eq!(r["pack"]["specVersion"], "1.0");
    assert_eq!(r["pack"]["source"], "embedded");
}

#[test]
fn the_script_refuses_an_unknown_fail_on_and_a_missing_binary() {
    let work = TempDir::new("ci-bad");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(root().join("scripts/ci-check"));
        cmd.current_dir(&work.0).env_remove("GITHUB_OUTPUT");
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    };
    let o = run(&[
        ("OCI_CONFORM_BIN", bin().to_str().unwrap()),
        ("OCI_CONFORM_FAIL_ON", "sometimes"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("fail, error or never"), "{}", text(&o));
    let o = run(&[("OCI_CONFORM_BIN", "/nonexistent/oci-conform")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("cannot find the oci-conform binary"),
        "{}",
        text(&o)
    );
}
