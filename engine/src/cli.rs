//! The command line: `run`, `list`, `lint`, `compare`, `coverage`, `packs`, the shell
//! integration (`completions`, `man`), and the maintainers' `selftest` and `proxy`.
//!
//! Exit codes: 0 = no FAIL and no Error; 2 = bad input (flags, configuration, scenario or
//! dataset files); 3 = runtime error (an Error result, or outputs could not be written);
//! 4 = conformance failure (at least one FAIL).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use indexmap::IndexMap;
use serde_json::{json, Value as J};

use crate::config::{self, Config};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::pack::{self, Pack};
use crate::plan::{self, PlanKind};
use crate::redact::Redactor;
use crate::report;
use crate::report::progress::{Mode, Progress};
use crate::results::Status;
use crate::source::{self, Packs};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: bad input.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code: runtime error.
pub const EXIT_RUNTIME: i32 = 3;
/// Exit code: the registry failed conformance.
pub const EXIT_FAIL: i32 = 4;

const AFTER_HELP: &str = "\
Configuration comes from, lowest first: the pack's per-version defaults, legacy OCI_* variables,
oci-conformance.yaml (or $OCI_CONFIGURATION), OCI_* variables, then flags. See README.md.

Exit codes:
  0  no FAIL and no Error
  2  bad input (flags, configuration, scenario or dataset files)
  3  runtime error (an Error result, or outputs could not be written)
  4  conformance failure (at least one FAIL); for `compare`: something regressed";

/// `print!`, `println!`, `eprint!` and `eprintln!` without their panic when the reader has
/// gone (`oci-conform list | head`): the output just ends.
macro_rules! out {
    ($($arg:tt)*) => {
        written(std::io::Write::write_fmt(&mut std::io::stdout(), format_args!($($arg)*)))
    };
}
macro_rules! outln {
    ($($arg:tt)*) => {
        out!("{}\n", format_args!($($arg)*))
    };
}
macro_rules! err {
    ($($arg:tt)*) => {
        written(std::io::Write::write_fmt(&mut std::io::stderr(), format_args!($($arg)*)))
    };
}
macro_rules! errln {
    ($($arg:tt)*) => {
        err!("{}\n", format_args!($($arg)*))
    };
}

/// The outcome of writing to stdout or stderr: a closed pipe is the reader's choice and ends
/// the output quietly; anything else is said on stderr (if that still works).
fn written(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("error: cannot write output: {e}\n"),
            );
        }
    }
}

/// The description of `--help` and of the man page.
const LONG_ABOUT: &str = "\
Conformance tests for the OCI Distribution Spec (the HTTP API of container registries), written
as YAML scenarios run by a generic HTTP assertion engine.

The packs (scenarios, datasets and JSON Schemas of spec versions 1.0, 1.1 and dev) are built into
the binary, so it runs from any folder; --specs DIR (OCI_SPECS_DIR) runs the packs of a folder
instead, and `oci-conform packs export DIR` writes the built-in ones out to edit.";

/// Conformance tests for the OCI Distribution Spec, written as YAML scenarios.
#[derive(Parser, Debug)]
#[command(name = "oci-conform", version, about, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// When to colour the output: auto (on a terminal, unless NO_COLOR is set), always (also
    /// off a terminal and with NO_COLOR set), never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    color: ColorWhen,
    #[command(subcommand)]
    command: Command,
}

/// When output is coloured. An explicit `always`/`never` wins over `NO_COLOR`, as a flag
/// given on the command line wins over the environment everywhere else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set to something.
    #[default]
    Auto,
    /// Always, terminal or not.
    Always,
    /// Never.
    Never,
}

impl ColorWhen {
    /// Whether to colour a stream that is (or is not) a terminal.
    fn enabled(self, tty: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the conformance tests against a registry; write results.yaml, junit.xml, report.html.
    Run(RunArgs),
    /// Print the test plan (what `run` would do) without sending anything.
    List(ListArgs),
    /// Check scenario, dataset and pack files: schema, keys, templates; errors as file:line:col.
    Lint(LintArgs),
    /// Show what changed between two results.yaml files, regressions first (exit 4 if any).
    Compare(CompareArgs),
    /// Prove the suite: a baseline run, then one run per alteration (specs/alterations/)
    /// through a proxy; every violation must be caught, every variant must pass (exit 4 if not).
    Selftest(SelftestArgs),
    /// Serve a registry through alterations, for any client (a maintainer's tool).
    Proxy(ProxyArgs),
    /// For every requirement of the pack's version, the cases that check it and, given
    /// results.yaml files, the status each registry got.
    Coverage(CoverageArgs),
    /// The packs built into this binary: list them, or export them as files to edit.
    Packs(PacksArgs),
    /// Print a shell completion script to stdout (e.g. `oci-conform completions bash`).
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout, or write one page per command with --out DIR.
    Man(ManArgs),
}

#[derive(Args, Debug)]
struct SelftestArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    run: RunOptions,
    /// The registry under test, matched against the alterations' `targets`
    /// (e.g. docker-registry, ferro-oci-server); alterations with targets apply only then.
    #[arg(long)]
    target: Option<String>,
    /// Only these alterations (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// List the alterations and the requirement ids no violation breaks; run nothing.
    #[arg(long)]
    list: bool,
    /// Alteration runs at the same time (each with its own repositories and seed).
    #[arg(long, default_value_t = 4)]
    runs: usize,
    /// Seconds one run may take before its proxy cuts every connection.
    #[arg(long = "run-timeout", default_value_t = 600)]
    run_timeout: u64,
    /// Write the reports of every run, not only of rows that do not hold.
    #[arg(long)]
    keep: bool,
    /// Print only the table.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct ProxyArgs {
    /// The registry: HOST:PORT (plain HTTP unless --tls says otherwise) or a URL.
    #[arg(long)]
    upstream: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5050")]
    listen: String,
    /// Alterations to apply, in order (repeatable, or comma-separated); none: pass through.
    #[arg(long, value_delimiter = ',')]
    apply: Vec<String>,
    /// Folder holding the packs and alterations/ (OCI_SPECS_DIR).
    #[arg(long, env = "OCI_SPECS_DIR")]
    specs: Option<PathBuf>,
    /// TLS towards a HOST:PORT upstream: enabled, insecure or disabled (default).
    #[arg(long)]
    tls: Option<String>,
    /// Extra CA certificate (PEM) for --tls enabled.
    #[arg(long = "tls-ca-file")]
    tls_ca_file: Option<PathBuf>,
    /// Seconds an upstream request may go without progress.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Do not print each exchange.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct CoverageArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: CoverageFormat,
    /// A results.yaml of a run of this pack: adds a status column (repeatable; `label=path`
    /// names the column, else the results folder's name does).
    #[arg(long = "results", value_name = "[LABEL=]FILE")]
    results: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CoverageFormat {
    /// Markdown (docs/coverage-*.md).
    Md,
    /// One self-contained HTML page.
    Html,
    /// YAML.
    Yaml,
}

#[derive(Args, Debug)]
struct PacksArgs {
    #[command(subcommand)]
    command: PacksCommand,
}

#[derive(Subcommand, Debug)]
enum PacksCommand {
    /// Each pack (spec version, folder, digest) of --specs, else of the packs built in.
    List {
        /// Folder holding the packs (OCI_SPECS_DIR).
        #[arg(long, env = "OCI_SPECS_DIR", value_name = "DIR")]
        specs: Option<PathBuf>,
    },
    /// Write the packs built in as files: DIR/specs/, DIR/datasets/, DIR/schemas/ (then
    /// `lint DIR/specs`, `run --specs DIR/specs`).
    Export {
        /// The folder to write to (created if missing; must be empty unless --force).
        dir: PathBuf,
        /// Write into a folder that is not empty, replacing its specs/, datasets/ and schemas/
        /// (other files in it are left alone).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: crate::shell::Shell,
}

#[derive(Args, Debug)]
struct ManArgs {
    /// Write oci-conform.1 and one page per subcommand (oci-conform-run.1, …) into this folder
    /// instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// The earlier results.yaml (oci-conform's or the official suite's).
    old: PathBuf,
    /// The later results.yaml.
    new: PathBuf,
}

/// Flags that feed the configuration.
#[derive(Args, Debug, Default)]
struct ConfigArgs {
    /// Registry host[:port] (OCI_REGISTRY).
    #[arg(long)]
    registry: Option<String>,
    /// TLS mode: enabled, insecure or disabled (OCI_TLS).
    #[arg(long)]
    tls: Option<String>,
    /// Repository to push to (OCI_REPO1).
    #[arg(long)]
    repo1: Option<String>,
    /// Second repository (OCI_REPO2).
    #[arg(long)]
    repo2: Option<String>,
    /// Spec version: 1.0, 1.1 (stable) or dev (OCI_VERSION).
    #[arg(long = "spec-version")]
    spec_version: Option<String>,
    /// Folder holding the packs: 1.0/, 1.1/, dev/, with datasets/ and schemas/ beside it
    /// (default: the packs built into this binary; OCI_SPECS_DIR).
    #[arg(long, env = "OCI_SPECS_DIR", value_name = "DIR")]
    specs: Option<PathBuf>,
    /// Run only tests whose id or name starts with this (repeatable; OCI_FILTER_TEST).
    #[arg(long)]
    filter: Vec<String>,
    /// Content seed; the same seed sends the same bytes (OCI_SEED).
    #[arg(long)]
    seed: Option<u64>,
    /// Set any configuration key, e.g. --set apis.tags.delete=false (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// What `run` and `selftest` take beyond the configuration: where results go and how runs send.
#[derive(Args, Debug)]
struct RunOptions {
    /// Where to write the results (results.yaml and reports; for selftest, selftest.yaml and the
    /// reports of rows that do not hold) (OCI_RESULTS_DIR).
    #[arg(long = "results-dir")]
    results_dir: Option<String>,
    /// Seconds a request may go without progress (OCI_REQUEST_TIMEOUT).
    #[arg(long)]
    timeout: Option<u64>,
    /// Tests that may run at once in a run (OCI_PARALLEL; default 8); verdicts are the same with 1.
    #[arg(short = 'j', long = "parallel")]
    parallel: Option<u64>,
}

impl RunOptions {
    /// The configuration layer these flags make (above the variables and the file).
    fn layer(&self) -> [(&'static str, Option<J>); 3] {
        [
            ("resultsDir", self.results_dir.clone().map(J::from)),
            ("requestTimeout", self.timeout.map(J::from)),
            ("parallel", self.parallel.map(J::from)),
        ]
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    run: RunOptions,
    /// Print only the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Print every request and answer (credentials masked).
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Also show what may run at the same time (‖ lane of a parallel batch) and the keys
    /// each node holds (exclusive, shared, apart).
    #[arg(long)]
    schedule: bool,
    /// List the requirement ids (R45, …) the plan checks, each with the tests that cite it.
    #[arg(long)]
    by_requirement: bool,
    /// Also show where each test is written and the parameters of the files it uses, then
    /// every parameter the used files declare (type, default, doc).
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args, Debug)]
struct LintArgs {
    /// Pack folders, scenario or dataset files (default: every pack of --specs, else the
    /// packs built into this binary).
    paths: Vec<PathBuf>,
    /// Folder holding the packs (OCI_SPECS_DIR).
    #[arg(long, env = "OCI_SPECS_DIR", value_name = "DIR")]
    specs: Option<PathBuf>,
}

/// Entry point: parses arguments, runs the command and returns the exit code.
pub fn main() -> i32 {
    let mut cmd = Cli::command();
    // `--version` names the packs it carries, which takes loading them: only when asked.
    if std::env::args_os().skip(1).any(|a| a == "--version") {
        // clap keeps the text for the life of the process, which ends right after printing it.
        cmd = cmd.long_version(&*Box::leak(long_version().into_boxed_str()));
    }
    let cli = match cmd
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_OK
            };
            let _ = e.print();
            return code;
        }
    };
    let env: IndexMap<String, String> = std::env::vars().collect();
    let color = cli.color;
    let result = match cli.command {
        Command::Run(args) => run(&args, &env, color),
        Command::List(args) => list(&args, &env),
        Command::Lint(args) => lint(&args),
        Command::Compare(args) => Ok(compare(&args, color)),
        Command::Coverage(args) => coverage(&args, &env),
        Command::Packs(args) => match args.command {
            PacksCommand::List { specs } => packs_list(specs.as_deref()),
            PacksCommand::Export { dir, force } => packs_export(&dir, force),
        },
        Command::Completions(args) => {
            crate::shell::completions(args.shell, Cli::command(), &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Man(args) => Ok(man(&args)),
        Command::Selftest(args) => selftest(&args, &env, color),
        Command::Proxy(args) => proxy(&args),
    };
    match result {
        Ok(code) => code,
        Err(d) => {
            err!("{}", d.render());
            EXIT_BAD_INPUT
        }
    }
}

fn flag_layer(args: &ConfigArgs, extra: &[(&str, Option<J>)]) -> Result<J, Diagnostics> {
    let mut layer = config::parse_overrides(&args.set)?;
    let mut flags = json!({});
    let pairs = [
        ("registry", args.registry.clone().map(J::from)),
        ("repo1", args.repo1.clone().map(J::from)),
        ("repo2", args.repo2.clone().map(J::from)),
        ("version", args.spec_version.clone().map(J::from)),
        ("seed", args.seed.map(J::from)),
        (
            "tls",
            match &args.tls {
                Some(t) => Some(
                    config::parse_value(config::Kind::Tls, t, "--tls")
                        .map_err(|m| Diagnostic::new(Pos::default(), m))?,
                ),
                None => None,
            },
        ),
    ];
    for (k, v) in pairs.into_iter().chain(extra.iter().cloned()) {
        if let Some(v) = v {
            flags[k] = v;
        }
    }
    config::merge(&mut layer, &flags);
    Ok(layer)
}

/// Everything a command needs once inputs are loaded.
struct Loaded {
    pack: Pack,
    config: Config,
    filters: Vec<String>,
}

fn load(
    args: &ConfigArgs,
    env: &IndexMap<String, String>,
    extra: &[(&str, Option<J>)],
) -> Result<Loaded, Diagnostics> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let flags = flag_layer(args, extra)?;
    let sources = config::gather(env, &cwd, flags)?;
    for w in &sources.warnings {
        errln!("{w}");
    }
    let version = sources.version();
    let packs = Packs::choose(args.specs.as_deref());
    note_stale_checkout(&packs, &cwd);
    let dir = pack::find(&packs.specs_dir(), &version)?;
    let mut loader = pack::Loader::default();
    let pack = pack::load_with(&dir, &mut loader)?;
    // The schemas are an extra guard here when they are at hand (a pack naming a `schemas:`
    // folder that is missing still gets every typed check); `lint` insists on them.
    if source::is_file(&pack.schemas_dir.join(crate::schema::SCENARIO)) {
        let problems = crate::lint::schema_problems(&loader, &pack.schemas_dir);
        if !problems.is_empty() {
            return Err(problems);
        }
    }
    let config = config::resolve(&sources, &pack.defaults, &pack.spec_version)?;
    let mut filters = args.filter.clone();
    if !config.filter_test.is_empty() {
        filters.push(config.filter_test.clone());
    }
    Ok(Loaded {
        pack,
        config,
        filters,
    })
}

/// The plan check (`crate::check`): a typo in a template is an error before anything is sent.
fn checked(plan: &plan::Plan<'_>, pack: &Pack) -> Result<(), Diagnostics> {
    let problems = crate::check::plan(plan, pack.every_response.as_ref(), &pack.schemas_dir);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Run in a checkout whose packs were edited since the binary was built, the embedded packs
/// are still the ones used (a binary runs what it was built with, wherever it is started): say
/// so, since the maintainer most likely meant the folder.
fn note_stale_checkout(packs: &Packs, cwd: &Path) {
    if *packs == Packs::Embedded && source::differs_from_embedded(cwd) {
        errln!(
            "note: ./specs, ./datasets or ./schemas differ from the packs built into this binary, \
             which are the ones used; pass --specs specs to use the folder (or rebuild)"
        );
    }
}

fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut rng = crate::content::Rng::from_label(&format!("{nanos}/{}", std::process::id()));
    rng.next_u64() % 1_000_000_000_000
}

fn run(
    args: &RunArgs,
    env: &IndexMap<String, String>,
    color: ColorWhen,
) -> Result<i32, Diagnostics> {
    let extra = args.run.layer();
    let Loaded {
        pack,
        config,
        filters,
    } = load(&args.config, env, &extra)?;
    let seed = config.seed.unwrap_or_else(random_seed);
    let plan = plan::build(&pack, &config, &filters, seed)?;
    checked(&plan, &pack)?;
    let redactor = Redactor::default();
    let total = plan.root.case_count();
    let tty = std::io::stderr().is_terminal();
    let mode = if args.quiet {
        Mode::Quiet
    } else if tty {
        Mode::Live
    } else {
        Mode::Lines
    };
    let progress = Progress::new(
        total,
        mode,
        args.verbose,
        color.enabled(tty),
        redactor.clone(),
    );
    if !args.quiet {
        errln!(
            "oci-conform {} · spec {} · {} · {total} tests · seed {seed} · packs {}",
            env!("CARGO_PKG_VERSION"),
            pack.spec_version,
            config.base_url(),
            match source::origin(&pack.dir) {
                "embedded" => "embedded".to_string(),
                _ => crate::diag::display_path(&pack.dir),
            }
        );
    }
    let result = crate::run::execute(&pack, &plan, &config, seed, &progress, &redactor)
        .map_err(|m| Diagnostic::new(Pos::default(), m))?;
    progress.finish();
    let dir = PathBuf::from(&config.results_dir);
    let written = report::write_all(&dir, &result, &redactor);
    outln!(
        "{}",
        redactor.scrub(&report::console::summary(
            &result,
            color.enabled(std::io::stdout().is_terminal())
        ))
    );
    if let Err(e) = written {
        errln!("error: cannot write results to {}: {e}", dir.display());
        return Ok(EXIT_RUNTIME);
    }
    if !args.quiet {
        errln!(
            "Results written to {}: {}",
            dir.display(),
            report::FILES.join(", ")
        );
    }
    let status = result.status();
    Ok(if status == Status::Error {
        EXIT_RUNTIME
    } else if status == Status::Fail {
        EXIT_FAIL
    } else {
        EXIT_OK
    })
}

fn list(args: &ListArgs, env: &IndexMap<String, String>) -> Result<i32, Diagnostics> {
    let Loaded {
        pack,
        config,
        filters,
    } = load(&args.config, env, &[])?;
    let plan = plan::build(&pack, &config, &filters, config.seed.unwrap_or(1))?;
    checked(&plan, &pack)?;
    if args.by_requirement {
        out!("{}", requirements(&plan.root, pack.every_response.as_ref()));
        return Ok(EXIT_OK);
    }
    let mut out = String::new();
    plan.root.walk(&mut |n, depth| {
        let mut indent = "  ".repeat(depth);
        if args.schedule && !n.lanes.is_empty() && depth > 0 {
            // A lane of a concurrent batch: `‖` replaces the last indent step.
            indent.truncate(indent.len() - 2);
            indent.push_str("‖ ");
        }
        let mut keys = String::new();
        if args.schedule && !n.exclusive.is_empty() {
            keys.push_str(&format!("  ⟂ {}", n.exclusive.join(" ")));
        }
        if args.schedule && !n.shared.is_empty() {
            keys.push_str(&format!("  ⟂ shared {}", n.shared.join(" ")));
        }
        if args.schedule && !n.apart.is_empty() && matches!(n.kind, PlanKind::Case(_)) {
            let apart: Vec<String> = n.apart.iter().map(|(k, c)| format!("{k}={c}")).collect();
            keys.push_str(&format!("  ⟂ apart {}", apart.join(" ")));
        }
        match &n.kind {
            PlanKind::Group { .. } => out.push_str(&format!(
                "{indent}{} ({} tests){keys}\n",
                if n.id.is_empty() { &n.name } else { &n.id },
                n.case_count()
            )),
            PlanKind::Case(_) => {
                let mut line = format!("{indent}{}", n.id);
                if !n.apis.is_empty() {
                    line.push_str(&format!("  [{}]", n.apis.join(", ")));
                }
                if let Some(d) = &n.disabled {
                    line.push_str(&format!("  Disabled: {d}"));
                }
                if !n.when.is_empty() {
                    line.push_str("  (conditional)");
                }
                line.push_str(&keys);
                out.push_str(&line);
                out.push('\n');
            }
        }
        if args.verbose && (matches!(n.kind, PlanKind::Case(_)) || !n.params.is_empty()) {
            out.push_str(&format!("{indent}    at {}", n.source));
            if !n.params.is_empty() {
                let params: Vec<String> = n
                    .params
                    .iter()
                    .map(|(k, v)| format!("{k}={}", shown(v)))
                    .collect();
                out.push_str(&format!(" · {}", params.join(", ")));
            }
            out.push('\n');
        }
    });
    if args.verbose {
        out.push_str(&declared_params(&pack.root));
    }
    out!("{out}");
    outln!(
        "{} tests in {} ({}) · spec {}",
        plan.root.case_count(),
        crate::diag::display_path(&pack.dir),
        source::origin(&pack.dir),
        pack.spec_version
    );
    Ok(EXIT_OK)
}

/// A parameter value in one short line: a dataset item by its name, long lists by length.
fn shown(v: &minijinja::value::Value) -> String {
    use minijinja::value::ValueKind as K;
    match v.kind() {
        K::Map => match v.get_attr("name") {
            Ok(n) if !n.is_undefined() => format!("<{n}>"),
            _ => "{…}".to_string(),
        },
        K::Seq if v.len().unwrap_or(0) > 4 => format!("[{} items]", v.len().unwrap_or(0)),
        K::String => format!("{:?}", v.as_str().unwrap_or_default()),
        K::Bool => v.is_true().to_string(),
        _ => v.to_string(),
    }
}

/// Every parameter the files used in the tree declare, file by file.
fn declared_params(root: &crate::scenario::NodeSpec) -> String {
    fn walk<'a>(n: &'a crate::scenario::NodeSpec, out: &mut Vec<&'a crate::scenario::NodeSpec>) {
        if let Some(u) = &n.uses {
            if !u.node.params.is_empty() && !out.iter().any(|o| std::ptr::eq(*o, &*u.node)) {
                out.push(&u.node);
            }
            walk(&u.node, out);
        }
        if let crate::scenario::NodeBody::Group(items) = &n.body {
            for i in items {
                walk(i, out);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    let mut out = String::from("\nParameters of the used files:\n");
    for f in files {
        let file = f
            .pos
            .file
            .as_ref()
            .map(|p| crate::diag::display_path(p))
            .unwrap_or_default();
        out.push_str(&format!("  {file}\n"));
        for p in &f.params {
            let default = p
                .default
                .as_ref()
                .map(|d| match d {
                    crate::template::ValueTmpl::Const(c, _) => format!(" = {}", shown(c)),
                    crate::template::ValueTmpl::Expr(e) => format!(" = {{{{ {} }}}}", e.src),
                    _ => " = (a template)".to_string(),
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "    {:<16} {:<30} {}\n",
                p.name,
                format!("{}{default}", p.type_.as_str()),
                p.doc
            ));
        }
    }
    out
}

/// Requirement id → the tests citing it (case-level `req`), in id order, with a count line.
fn requirements(root: &plan::PlanNode<'_>, every: Option<&crate::scenario::ExpectSpec>) -> String {
    let mut by_req: std::collections::BTreeMap<(String, u32), Vec<String>> =
        std::collections::BTreeMap::new();
    let mut cite = |r: &str, test: &str| {
        let (prefix, num) = r.split_at(r.find(|c: char| c.is_ascii_digit()).unwrap_or(r.len()));
        let tests = by_req
            .entry((prefix.to_string(), num.parse().unwrap_or(0)))
            .or_default();
        if !tests.iter().any(|t| t == test) {
            tests.push(test.to_string());
        }
    };
    // The pack's checks on every answer cite their rows at the check.
    if let Some(e) = every {
        let reqs = e
            .headers
            .iter()
            .flat_map(|(_, m)| m.req.iter())
            .chain(e.assert.iter().flat_map(|a| a.req.iter()));
        for r in reqs {
            cite(r, "(every response)");
        }
    }
    root.walk(&mut |n, _| {
        if let PlanKind::Case(_) = n.kind {
            for r in &n.req {
                cite(r, &n.id);
            }
        }
    });
    let mut out = String::new();
    for ((prefix, num), tests) in &by_req {
        out.push_str(&format!(
            "{prefix}{num}  ({} tests)  {}\n",
            tests.len(),
            tests.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    out.push_str(&format!(
        "{} requirement ids cited (entries of specs/requirements.yaml; `oci-conform coverage` shows each with its statement)\n",
        by_req.len()
    ));
    out
}

fn lint(args: &LintArgs) -> Result<i32, Diagnostics> {
    let paths = if args.paths.is_empty() {
        let packs = Packs::choose(args.specs.as_deref());
        note_stale_checkout(&packs, &std::env::current_dir().unwrap_or_default());
        vec![packs.specs_dir()]
    } else {
        args.paths.clone()
    };
    let mut diags = Diagnostics::default();
    let mut warnings = Diagnostics::default();
    let mut checked = 0;
    for p in &paths {
        if !source::exists(p) {
            diags.push(Diagnostic::new(Pos::file(p), "no such file or folder"));
            continue;
        }
        for target in lint_targets(p) {
            checked += 1;
            let (e, w) = crate::lint::check_all(&target);
            diags.0.extend(e.0);
            warnings.0.extend(w.0);
        }
    }
    // The coverage gap: requirements of a pack's version that no case checks yet.
    for w in &warnings.0 {
        err!("{}", w.render().replacen("error:", "warning:", 1));
    }
    let mut seen = Vec::new();
    diags.0.retain(|d| {
        let key = d.to_string();
        let fresh = !seen.contains(&key);
        seen.push(key);
        fresh
    });
    if diags.is_empty() {
        let embedded = paths.iter().all(|p| source::is_embedded(p));
        let what = if embedded {
            " (the packs built into this binary)"
        } else {
            ""
        };
        if warnings.is_empty() {
            outln!("ok: {checked} target(s) checked{what}");
        } else {
            outln!(
                "ok: {checked} target(s) checked{what}; {} warning(s): observable registry MUST / MUST NOT no case checks (`oci-conform coverage` lists them)",
                warnings.0.len()
            );
        }
        Ok(EXIT_OK)
    } else {
        err!("{}", diags.render());
        errln!("{} problem(s) found", diags.0.len());
        Ok(EXIT_BAD_INPUT)
    }
}

/// Reads and compiles the alteration files of a specs folder, checked against their schema.
fn alterations(specs: &Path) -> Result<Vec<crate::selftest::alteration::Alteration>, Diagnostics> {
    alterations_and_notes(specs).map(|(a, _)| a)
}

/// The alterations and the `unprovoked` notes of a specs folder.
fn alterations_and_notes(
    specs: &Path,
) -> Result<
    (
        Vec<crate::selftest::alteration::Alteration>,
        Vec<crate::selftest::alteration::Unprovoked>,
    ),
    Diagnostics,
> {
    let files = pack::alteration_files(specs)?;
    let notes = crate::selftest::alteration::unprovoked(&files);
    let schemas_dir = pack::normalize(&source::absolute(specs).join("../schemas"));
    let mut diags = Diagnostics::default();
    let compiled = crate::selftest::alteration::compile_all(&files);
    if let Err(d) = &compiled {
        diags.0.extend(d.0.iter().cloned());
    }
    if source::is_file(&schemas_dir.join(crate::schema::ALTERATION)) {
        let mut schemas = crate::schema::FormatSchemas::new(&schemas_dir);
        let typed: Vec<Pos> = diags.0.iter().map(|d| d.pos.clone()).collect();
        for (_, node) in &files {
            for d in schemas.check(node, pack::FileKind::Alteration) {
                if !typed.contains(&d.pos) && !diags.0.contains(&d) {
                    diags.push(d);
                }
            }
        }
    }
    match compiled {
        Ok(list) if diags.is_empty() => Ok((list, notes)),
        _ => Err(diags),
    }
}

fn selftest(
    args: &SelftestArgs,
    env: &IndexMap<String, String>,
    color: ColorWhen,
) -> Result<i32, Diagnostics> {
    use crate::selftest::driver;
    if !args.config.filter.is_empty() {
        return Err(Diagnostic::new(
            Pos::default(),
            "selftest chooses the tests of each run itself (an alteration's `filter`)",
        )
        .with_hint("use --only ID to run some alterations")
        .into());
    }
    let extra = args.run.layer();
    let Loaded { pack, config, .. } = load(&args.config, env, &extra)?;
    let specs = pack::specs_dir(args.config.specs.as_deref());
    let (all, notes) = alterations_and_notes(&specs)?;
    let target = args.target.clone().unwrap_or_default();
    if args.list {
        print!(
            "{}",
            driver::list(&all, &notes, &pack, &config, &target).map_err(Diagnostics::from)?
        );
        return Ok(EXIT_OK);
    }
    let opts = driver::Options {
        target,
        only: args.only.clone(),
        runs: args.runs.max(1),
        run_timeout: std::time::Duration::from_secs(args.run_timeout.max(1)),
        quiet: args.quiet,
        keep: args.keep,
    };
    let (chosen, left_out) = driver::select(all, &opts, &pack).map_err(Diagnostics::from)?;
    if chosen.is_empty() {
        return Err(Diagnostic::new(
            Pos::file(&specs.join(pack::ALTERATIONS)),
            format!(
                "no alteration applies to target `{}`, spec {}",
                opts.target, pack.spec_version
            ),
        )
        .with_hint("pass --target NAME (`selftest --list` shows each alteration's targets)")
        .into());
    }
    let seed = config.seed.unwrap_or_else(random_seed);
    let redactor = Redactor::default();
    if !config.password.is_empty() {
        redactor.add_basic(&config.username, &config.password);
    }
    let report = match driver::run(&pack, &config, chosen, left_out, seed, &opts, &redactor) {
        Ok(r) => r,
        Err(d) => {
            eprint!("{}", d.render());
            return Ok(EXIT_RUNTIME);
        }
    };
    print!(
        "{}",
        redactor.scrub(&driver::table(
            &report,
            color.enabled(std::io::stdout().is_terminal())
        ))
    );
    let file = PathBuf::from(&config.results_dir).join("selftest.yaml");
    let written = std::fs::create_dir_all(&config.results_dir).and_then(|()| {
        std::fs::write(
            &file,
            redactor.scrub(&driver::yaml(&report, &pack, &config, &opts)),
        )
    });
    if let Err(e) = written {
        eprintln!("error: cannot write {}: {e}", file.display());
        return Ok(EXIT_RUNTIME);
    }
    Ok(if report.holds() { EXIT_OK } else { EXIT_FAIL })
}

fn proxy(args: &ProxyArgs) -> Result<i32, Diagnostics> {
    use crate::selftest::proxy::{Options, Proxy};
    let tls = match &args.tls {
        Some(t) => serde_json::from_value(
            config::parse_value(config::Kind::Tls, t, "--tls")
                .map_err(|m| Diagnostic::new(Pos::default(), m))?,
        )
        .map_err(|e| Diagnostic::new(Pos::default(), format!("--tls: {e}")))?,
        None => config::Tls::Disabled,
    };
    let upstream = if args.upstream.contains("://") {
        args.upstream.clone()
    } else if tls == config::Tls::Disabled {
        format!("http://{}", args.upstream)
    } else {
        format!("https://{}", args.upstream)
    };
    let mut chosen = Vec::new();
    if !args.apply.is_empty() {
        let specs = pack::specs_dir(args.specs.as_deref());
        let mut all = alterations(&specs)?;
        for id in &args.apply {
            let Some(i) = all.iter().position(|a| a.id == *id) else {
                let mut d = Diagnostic::new(Pos::default(), format!("no alteration `{id}`"));
                if let Some(s) = crate::diag::did_you_mean(id, all.iter().map(|a| a.id.as_str())) {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
                return Err(d.into());
            };
            chosen.push(std::sync::Arc::new(all.remove(i)));
        }
    }
    let names: Vec<String> = chosen.iter().map(|a| a.id.clone()).collect();
    let p = Proxy::start(Options {
        listen: args.listen.clone(),
        upstream: upstream.clone(),
        tls,
        ca_file: args.tls_ca_file.clone(),
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        alterations: chosen,
        echo: !args.quiet,
    })
    .map_err(|m| Diagnostic::new(Pos::default(), m))?;
    eprintln!(
        "oci-conform proxy: http://{} → {upstream}, applying {}",
        p.addr,
        if names.is_empty() {
            "nothing".to_string()
        } else {
            names.join(", ")
        }
    );
    p.wait();
    Ok(EXIT_OK)
}

fn coverage(args: &CoverageArgs, env: &IndexMap<String, String>) -> Result<i32, Diagnostics> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let sources = config::gather(env, &cwd, flag_layer(&args.config, &[])?)?;
    let specs = pack::specs_dir(args.config.specs.as_deref());
    let dir = pack::find(&specs, &sources.version())?;
    let mut loader = pack::Loader::default();
    let pack = pack::load_with(&dir, &mut loader)?;
    let Some(catalogue) = pack.catalogue.clone() else {
        return Err(Diagnostic::new(
            Pos::file(&pack.dir),
            "no requirement catalogue (requirements.yaml) in a folder above this pack",
        )
        .into());
    };
    let config = config::resolve(&sources, &pack.defaults, &pack.spec_version)?;
    let plan = plan::build(&pack, &config, &[], config.seed.unwrap_or(1))?;
    let mut results = Vec::new();
    for r in &args.results {
        let file = crate::coverage::read_results(r, &catalogue, &pack.spec_version)
            .map_err(|m| Diagnostic::new(Pos::default(), m))?;
        if file.spec_version != pack.spec_version {
            errln!(
                "warning: {} is a run of spec {}, this report is of {} (its ids are read as {}'s)",
                file.label,
                file.spec_version,
                pack.spec_version,
                pack.spec_version
            );
        }
        results.push(file);
    }
    let report = crate::coverage::build(&pack, &catalogue, &loader, &plan, &results);
    let text = match args.format {
        CoverageFormat::Md => crate::coverage::render::markdown(&report),
        CoverageFormat::Html => crate::coverage::render::html(&report),
        CoverageFormat::Yaml => crate::coverage::render::yaml(&report),
    };
    out!("{text}");
    Ok(EXIT_OK)
}

fn compare(args: &CompareArgs, color: ColorWhen) -> i32 {
    let loaded = report::compare::load(&args.old)
        .and_then(|old| report::compare::load(&args.new).map(|new| (old, new)));
    let (old, new) = match loaded {
        Ok(pair) => pair,
        Err(e) => {
            errln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let c = report::compare::compare(&old, &new);
    out!(
        "{}",
        report::compare::render(
            &c,
            &old,
            &new,
            color.enabled(std::io::stdout().is_terminal())
        )
    );
    if c.regressions() > 0 {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}

/// Pack folders under `p` (or `p` itself when it is a file or a pack).
fn lint_targets(p: &Path) -> Vec<PathBuf> {
    if source::is_file(p) || source::is_file(&p.join("pack.yaml")) {
        return vec![p.to_path_buf()];
    }
    let mut out = pack::available(p).unwrap_or_default();
    // The self-test's alterations, next to the packs.
    let alterations = p.join(pack::ALTERATIONS);
    if !out.is_empty() && source::is_dir(&alterations) {
        out.push(alterations);
    }
    if out.is_empty() {
        out.push(p.to_path_buf());
    }
    out
}

/// The text of `--version`: the engine version, then where the packs come from and each
/// pack's spec version and digest (the digest results.yaml records for a run of it).
fn long_version() -> String {
    let specs = std::env::var_os("OCI_SPECS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let packs = Packs::choose(specs.as_deref());
    let inventory = packs_inventory(&packs);
    format!("{}\n{}", env!("CARGO_PKG_VERSION"), inventory.trim_end())
}

/// Where the packs come from, then one line per pack: spec version, folder, digest.
fn packs_inventory(packs: &Packs) -> String {
    let specs = packs.specs_dir();
    let mut out = match packs {
        Packs::Embedded => format!(
            "packs: embedded ({} files built into this binary)\n",
            source::embedded_files().len()
        ),
        Packs::Folder(_) => format!(
            "packs: folder {}\n",
            crate::diag::display_path(&source::absolute(&specs))
        ),
    };
    let dirs = match pack::available(&specs) {
        Ok(d) => d,
        Err(e) => return format!("{out}  {e}\n"),
    };
    let width = dirs
        .iter()
        .map(|d| crate::diag::display_path(d).len())
        .max()
        .unwrap_or(0);
    for dir in dirs {
        let shown = crate::diag::display_path(&dir);
        match pack::load(&dir) {
            Ok(p) => out.push_str(&format!(
                "  {:<8} {shown:<width$}  {}\n",
                p.spec_version, p.digest
            )),
            Err(d) => out.push_str(&format!(
                "  {shown}: does not load ({} problem(s); see `oci-conform lint`)\n",
                d.0.len()
            )),
        }
    }
    out
}

fn packs_list(specs: Option<&Path>) -> Result<i32, Diagnostics> {
    let packs = Packs::choose(specs);
    pack::available(&packs.specs_dir())?;
    out!("{}", packs_inventory(&packs));
    Ok(EXIT_OK)
}

/// `packs export DIR`: refuses a folder holding anything unless `--force`, which replaces the
/// three pack folders in it (a stale file left behind would be linted and could be `use`d).
fn packs_export(dir: &Path, force: bool) -> Result<i32, Diagnostics> {
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_some());
    if dir.exists() && !dir.is_dir() {
        return Err(Diagnostic::new(Pos::file(dir), "not a folder").into());
    }
    if occupied && !force {
        return Err(Diagnostic::new(Pos::file(dir), "the folder is not empty")
            .with_hint("pass --force to replace its specs/, datasets/ and schemas/")
            .into());
    }
    let written = (|| {
        if force {
            for tree in source::TREES {
                let t = dir.join(tree);
                if t.exists() {
                    std::fs::remove_dir_all(&t)?;
                }
            }
        }
        source::export(dir)
    })();
    match written {
        Ok(n) => {
            let shown = dir.display();
            outln!("wrote {n} files to {shown}: specs/, datasets/, schemas/");
            outln!("check them:  oci-conform lint {shown}/specs");
            outln!("run them:    oci-conform run --specs {shown}/specs");
            Ok(EXIT_OK)
        }
        Err(e) => {
            errln!("error: cannot write to {}: {e}", dir.display());
            Ok(EXIT_RUNTIME)
        }
    }
}

fn man(args: &ManArgs) -> i32 {
    let written = match &args.out {
        None => crate::shell::man_page(Cli::command(), &mut std::io::stdout()),
        Some(dir) => crate::shell::man_pages_to(Cli::command(), dir).map(|pages| {
            for p in pages {
                outln!("{}", p.display());
            }
        }),
    };
    match written {
        Ok(()) => EXIT_OK,
        Err(e) => {
            errln!("error: cannot write the man page: {e}");
            EXIT_RUNTIME
        }
    }
}
