//! Runs scenarios against a query API and reports each step.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::actors::{ActorError, Actors, AdminCredentials};
use crate::expectation::{evaluate_all, ExpectationFailure};
use crate::format::{load_file, Block, FormatError, Scenario, Step, StepKind};
use crate::graphql::{GraphQlClient, GraphQlError, GraphQlResponse, TransportError};
use crate::load::{run_load, LoadReport};
use crate::variables::{abbreviate, lookup, InterpolationError, Vars};

/// Dev default of `SHOP_ADMIN_EMAIL`.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@shop.local";
/// Dev default of `SHOP_ADMIN_PASSWORD` (the gateway's `DEV_ADMIN_PASSWORD`).
pub const DEFAULT_ADMIN_PASSWORD: &str = "admin-dev-password";

/// How scenarios are run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The admin account (`SHOP_ADMIN_EMAIL` / `SHOP_ADMIN_PASSWORD`).
    pub admin: AdminCredentials,
    /// Print nothing (the [`Summary`] still has everything).
    pub quiet: bool,
    /// Print every step inside loops too, not only the loop's line.
    pub verbose: bool,
    /// The program `shop` steps run (normally the `shop` executable itself).
    pub shop_program: Option<PathBuf>,
    /// Environment given to `shop` steps (e.g. the spawned components' URLs).
    pub shop_env: Vec<(String, String)>,
    /// Timeout of each GraphQL request.
    pub request_timeout: Duration,
    /// Stop after the first failed scenario.
    pub fail_fast: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            admin: AdminCredentials {
                email: DEFAULT_ADMIN_EMAIL.to_owned(),
                password: DEFAULT_ADMIN_PASSWORD.to_owned(),
            },
            quiet: false,
            verbose: false,
            shop_program: None,
            shop_env: Vec::new(),
            request_timeout: Duration::from_secs(30),
            fail_fast: false,
        }
    }
}

impl RunOptions {
    /// The defaults, with the admin account from `SHOP_ADMIN_EMAIL` and
    /// `SHOP_ADMIN_PASSWORD` when set.
    pub fn from_env() -> Self {
        let mut options = Self::default();
        if let Ok(email) = std::env::var("SHOP_ADMIN_EMAIL") {
            options.admin.email = email;
        }
        if let Ok(password) = std::env::var("SHOP_ADMIN_PASSWORD") {
            options.admin.password = password;
        }
        options
    }
}

/// What can go wrong inside one step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// An expectation does not hold.
    #[error("{0}")]
    Expectation(ExpectationFailure),
    /// A wait's deadline passed before its expectations held.
    #[error("still not true after {waited:?}: {failure}")]
    WaitTimedOut {
        /// How long the step waited.
        waited: Duration,
        /// The expectation that did not hold at the last poll.
        failure: ExpectationFailure,
    },
    /// A wait's deadline passed while the query kept failing.
    #[error("no answer within {waited:?}; last error: {last_error}")]
    WaitFailed {
        /// How long the step waited.
        waited: Duration,
        /// The last GraphQL error.
        last_error: GraphQlError,
    },
    /// A `${..}` could not be resolved.
    #[error(transparent)]
    Interpolation(#[from] InterpolationError),
    /// The GraphQL operation answered with errors.
    #[error("GraphQL error: {}", join_errors(.errors))]
    GraphQl {
        /// The errors.
        errors: Vec<GraphQlError>,
    },
    /// The step was to fail with an error code but succeeded.
    #[error("expected error {expected}, but the operation succeeded with {data}")]
    MissingError {
        /// The expected code.
        expected: String,
        /// What it answered.
        data: String,
    },
    /// The step failed, but not with the expected code.
    #[error("expected error {expected}, got {}", join_errors(.errors))]
    WrongError {
        /// The expected code.
        expected: String,
        /// The errors it got.
        errors: Vec<GraphQlError>,
    },
    /// The query API could not be reached.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An actor could not sign in.
    #[error(transparent)]
    Actor(#[from] ActorError),
    /// A `capture` path leads nowhere.
    #[error("cannot capture {var}: no field {path:?} in {doc}")]
    Capture {
        /// The variable.
        var: String,
        /// The path.
        path: String,
        /// The result, abbreviated.
        doc: String,
    },
    /// A `shop` step failed.
    #[error("`shop {command}` {outcome}{stderr}")]
    Shop {
        /// The arguments.
        command: String,
        /// What happened (`exited with 1`, `did not finish within …`, `cannot start: …`).
        outcome: String,
        /// The end of its standard error, if any.
        stderr: String,
    },
    /// An iteration of a parallel block failed, and others did too.
    #[error("{error} (and {others} other iteration(s) failed)")]
    Parallel {
        /// The first iteration's failure.
        error: Box<StepError>,
        /// How many other iterations failed.
        others: usize,
    },
    /// A nested step failed.
    #[error("{0}")]
    Nested(Box<Failure>),
}

fn join_errors(errors: &[GraphQlError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A failed scenario: the file, the step, and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: step {step}: {error}", .file.display())]
pub struct Failure {
    /// The scenario file.
    pub file: PathBuf,
    /// The step: its number and name, through any blocks (`3 "buyers" › [7] › 1 "buy"`).
    pub step: String,
    /// What went wrong.
    pub error: StepError,
}

impl Failure {
    /// The failed expectation, if an expectation is what failed.
    pub fn expectation(&self) -> Option<&ExpectationFailure> {
        let mut error = &self.error;
        loop {
            match error {
                StepError::Expectation(failure) | StepError::WaitTimedOut { failure, .. } => {
                    return Some(failure)
                }
                StepError::Parallel { error: inner, .. } => error = inner,
                StepError::Nested(inner) => error = &inner.error,
                _ => return None,
            }
        }
    }
}

/// One step as it ran.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// The step's number and name (`3 "admin restocks"`), through any blocks.
    pub step: String,
    /// How long it took.
    pub elapsed: Duration,
    /// Whether it passed.
    pub passed: bool,
    /// A one-line detail (load figures, loop timings).
    pub note: Option<String>,
}

/// Why a scenario could not run at all, or how it failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioFailure {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A step failed.
    #[error(transparent)]
    Step(#[from] Failure),
}

/// One scenario as it ran.
#[derive(Debug)]
pub struct ScenarioReport {
    /// The file.
    pub file: PathBuf,
    /// The scenario's name.
    pub name: String,
    /// The run id (`${run_id}`).
    pub run_id: String,
    /// The top-level steps that ran (loops count as one).
    pub steps: Vec<StepReport>,
    /// The load steps' figures.
    pub loads: Vec<LoadReport>,
    /// How long it took.
    pub elapsed: Duration,
    /// Why it failed, if it did.
    pub failure: Option<ScenarioFailure>,
}

impl ScenarioReport {
    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Every scenario of a run.
#[derive(Debug, Default)]
pub struct Summary {
    /// The scenarios, in the order they ran.
    pub scenarios: Vec<ScenarioReport>,
    /// How long the whole run took.
    pub elapsed: Duration,
}

impl Summary {
    /// Whether every scenario passed.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(ScenarioReport::passed)
    }

    /// The failures, one per failed scenario.
    pub fn failures(&self) -> impl Iterator<Item = &ScenarioFailure> {
        self.scenarios.iter().filter_map(|s| s.failure.as_ref())
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let failed = self.scenarios.iter().filter(|s| !s.passed()).count();
        writeln!(
            f,
            "{} scenario(s): {} passed, {} failed, in {}",
            self.scenarios.len(),
            self.scenarios.len() - failed,
            failed,
            format_duration(self.elapsed)
        )?;
        for scenario in &self.scenarios {
            let mark = if scenario.passed() { "✓" } else { "✗" };
            writeln!(
                f,
                "  {mark} {} ({}) {}",
                scenario.name,
                scenario.file.display(),
                format_duration(scenario.elapsed)
            )?;
            for load in &scenario.loads {
                writeln!(f, "      {load}")?;
            }
            if let Some(failure) = &scenario.failure {
                writeln!(f, "      {failure}")?;
            }
        }
        Ok(())
    }
}

/// Why nothing could run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No scenario file was given.
    #[error("no scenario files given")]
    NoFiles,
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] TransportError),
}

/// What every scenario run shares.
pub(crate) struct Shared {
    pub(crate) client: GraphQlClient,
    pub(crate) target: String,
    pub(crate) options: RunOptions,
}

/// Runs scenarios against one query API.
pub struct ScenarioRunner {
    shared: Arc<Shared>,
}

impl ScenarioRunner {
    /// A runner for the query API at `target_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(target_url: &str, options: RunOptions) -> Result<Self, RunError> {
        let client = GraphQlClient::new(target_url, options.request_timeout)?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                target: target_url.trim_end_matches('/').to_owned(),
                options,
            }),
        })
    }

    /// Runs every file in order and sums up; a failed scenario does not stop
    /// the others unless `fail_fast` is set. A `Cargo.toml` among the files
    /// is skipped: the scenario files sit beside the crate's manifest.
    pub async fn run_files(&self, files: &[PathBuf]) -> Result<Summary, RunError> {
        if files.is_empty() {
            return Err(RunError::NoFiles);
        }
        let started = Instant::now();
        let mut summary = Summary::default();
        for file in files {
            // Scenario files live beside the crate's manifest, so `scenarios/*.toml` names it too.
            if file.file_name().is_some_and(|name| name == "Cargo.toml") {
                self.print(&format!(
                    "- skipping {} (a Cargo manifest, not a scenario)",
                    file.display()
                ));
                continue;
            }
            let report = self.run_file(file).await;
            let failed = !report.passed();
            summary.scenarios.push(report);
            if failed && self.shared.options.fail_fast {
                break;
            }
        }
        summary.elapsed = started.elapsed();
        self.print(&format!("\n{summary}"));
        Ok(summary)
    }

    /// Reads and runs one file.
    pub async fn run_file(&self, file: &Path) -> ScenarioReport {
        match load_file(file) {
            Ok(scenario) => self.run(&scenario).await,
            Err(error) => {
                self.print(&format!("✗ {error}"));
                ScenarioReport {
                    file: file.to_owned(),
                    name: file.display().to_string(),
                    run_id: String::new(),
                    steps: Vec::new(),
                    loads: Vec::new(),
                    elapsed: Duration::ZERO,
                    failure: Some(error.into()),
                }
            }
        }
    }

    /// Runs one parsed scenario with a fresh run id.
    pub async fn run(&self, scenario: &Scenario) -> ScenarioReport {
        let run_id = new_run_id();
        let started = Instant::now();
        self.print(&format!(
            "▶ {} — {} (run {run_id})",
            scenario.file.display(),
            scenario.name
        ));
        let ctx = RunCtx {
            shared: self.shared.clone(),
            actors: Arc::new(Actors::new(
                self.shared.client.clone(),
                run_id.clone(),
                self.shared.options.admin.clone(),
            )),
            file: scenario.file.clone(),
            reports: Mutex::default(),
            loads: Mutex::default(),
        };
        let mut vars = Vars::new();
        vars.set("run_id", json!(run_id));
        vars.set("target", json!(self.shared.target));
        vars.set("scenario", json!(scenario.name));
        let outcome = match vars.define_all(&scenario.vars) {
            Ok(()) => ctx.run_steps(&scenario.steps, &mut vars, "", true).await,
            Err(error) => Err(Failure {
                file: scenario.file.clone(),
                step: "[vars]".to_owned(),
                error: error.into(),
            }),
        };
        let elapsed = started.elapsed();
        match &outcome {
            Ok(()) => self.print(&format!("  passed in {}", format_duration(elapsed))),
            Err(failure) => self.print(&format!(
                "  FAILED in {}: {failure}",
                format_duration(elapsed)
            )),
        }
        ScenarioReport {
            file: scenario.file.clone(),
            name: scenario.name.clone(),
            run_id,
            steps: take(&ctx.reports),
            loads: take(&ctx.loads),
            elapsed,
            failure: outcome.err().map(ScenarioFailure::Step),
        }
    }

    fn print(&self, line: &str) {
        if !self.shared.options.quiet {
            println!("{line}");
        }
    }
}

fn take<T>(mutex: &Mutex<Vec<T>>) -> Vec<T> {
    std::mem::take(
        &mut *mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// Runs `files` against the query API at `target_url`.
pub async fn run_files(
    files: &[PathBuf],
    target_url: &str,
    options: RunOptions,
) -> Result<Summary, RunError> {
    ScenarioRunner::new(target_url, options)?
        .run_files(files)
        .await
}

/// A short unique id: 8 upper-case hex digits (SKUs are upper-cased by the shop).
fn new_run_id() -> String {
    let id = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    id[..8].to_owned()
}

fn format_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(10) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// GraphQL error codes that a wait keeps polling through: the view has not
/// caught up yet, or the system is busy.
const RETRYABLE_CODES: [&str; 3] = ["NOT_FOUND", "UNAVAILABLE", "TIMEOUT"];

pub(crate) struct RunCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) actors: Arc<Actors>,
    file: PathBuf,
    reports: Mutex<Vec<StepReport>>,
    loads: Mutex<Vec<LoadReport>>,
}

impl RunCtx {
    fn run_steps<'a>(
        &'a self,
        steps: &'a [Step],
        vars: &'a mut Vars,
        trail: &'a str,
        print: bool,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let depth = trail.matches(" › ").count() + usize::from(!trail.is_empty());
            for (i, step) in steps.iter().enumerate() {
                let name = vars
                    .interpolate_str(&step.name)
                    .unwrap_or_else(|_| step.name.clone());
                let label = format!("{} {name:?}", i + 1);
                let here = if trail.is_empty() {
                    label
                } else {
                    format!("{trail} › {label}")
                };
                let started = Instant::now();
                let outcome = self.run_step(step, vars, &here, print).await;
                let elapsed = started.elapsed();
                let (passed, note) = match &outcome {
                    Ok(note) => (true, note.clone()),
                    Err(_) => (false, None),
                };
                if print {
                    let mark = if passed { "✓" } else { "✗" };
                    let indent = "  ".repeat(depth + 1);
                    let note = note
                        .as_deref()
                        .map(|n| format!("  {n}"))
                        .unwrap_or_default();
                    if !self.shared.options.quiet {
                        println!(
                            "{indent}{mark} {:<48} {:>8}{note}",
                            format!("{}. {name}", i + 1),
                            format_duration(elapsed)
                        );
                    }
                }
                if trail.is_empty() {
                    lock(&self.reports).push(StepReport {
                        step: here.clone(),
                        elapsed,
                        passed,
                        note,
                    });
                }
                if let Err(error) = outcome {
                    return Err(match error {
                        // Nested failures already name their own step.
                        StepError::Nested(inner) => *inner,
                        error => Failure {
                            file: self.file.clone(),
                            step: here,
                            error,
                        },
                    });
                }
            }
            Ok(())
        })
    }

    async fn run_step(
        &self,
        step: &Step,
        vars: &mut Vars,
        here: &str,
        print: bool,
    ) -> Result<Option<String>, StepError> {
        match &step.kind {
            StepKind::GraphQl {
                document,
                variables,
            } => {
                let response = self.execute(step, document, variables, vars).await?;
                let doc = match &step.expect_error {
                    Some(expected) => expected_error(expected, response)?,
                    None if !response.errors.is_empty() => {
                        return Err(StepError::GraphQl {
                            errors: response.errors,
                        })
                    }
                    None => response.data,
                };
                finish(step, &doc, vars)?;
                Ok(None)
            }
            StepKind::Wait {
                document,
                variables,
                within,
                every,
            } => {
                let started = Instant::now();
                let mut polls = 0u32;
                loop {
                    polls += 1;
                    let response = self.execute(step, document, variables, vars).await?;
                    let failure = if let Some(error) = response.errors.into_iter().next() {
                        let retryable = error
                            .code
                            .as_deref()
                            .is_some_and(|c| RETRYABLE_CODES.contains(&c));
                        if !retryable {
                            return Err(StepError::GraphQl {
                                errors: vec![error],
                            });
                        }
                        Err(error)
                    } else {
                        match evaluate_all(&step.expect, &response.data, vars)? {
                            None => {
                                capture(step, &response.data, vars)?;
                                let note = (polls > 1).then(|| format!("({polls} polls)"));
                                return Ok(note);
                            }
                            Some(failure) => Ok(failure),
                        }
                    };
                    let waited = started.elapsed();
                    if waited >= *within {
                        return Err(match failure {
                            Ok(failure) => StepError::WaitTimedOut { waited, failure },
                            Err(last_error) => StepError::WaitFailed { waited, last_error },
                        });
                    }
                    // Polling a condition with a deadline, not sleeping to synchronise.
                    tokio::time::sleep((*every).min(*within - waited)).await;
                }
            }
            StepKind::Block(block) => self.run_block(block, vars, here, print).await,
            StepKind::Load(spec) => {
                let actor = step.actor.as_deref().unwrap_or("load-${index}");
                let report = run_load(self, spec, actor, vars).await?;
                let note = report.to_string();
                let doc = report.to_json();
                lock(&self.loads).push(report);
                finish(step, &doc, vars)?;
                Ok(Some(note))
            }
            StepKind::Shop {
                args,
                within,
                every,
            } => {
                let started = Instant::now();
                let mut runs = 0u32;
                loop {
                    runs += 1;
                    let remaining = within.saturating_sub(started.elapsed());
                    let doc = self.run_shop(args, remaining, vars).await?;
                    let Some(every) = every else {
                        finish(step, &doc, vars)?;
                        return Ok(None);
                    };
                    match evaluate_all(&step.expect, &doc, vars)? {
                        None => {
                            capture(step, &doc, vars)?;
                            return Ok((runs > 1).then(|| format!("({runs} runs)")));
                        }
                        Some(failure) => {
                            let waited = started.elapsed();
                            if waited + *every >= *within {
                                return Err(StepError::WaitTimedOut { waited, failure });
                            }
                            // Polling a condition with a deadline.
                            tokio::time::sleep(*every).await;
                        }
                    }
                }
            }
            StepKind::Check => {
                let doc = vars.to_json();
                finish(step, &doc, vars)?;
                Ok(None)
            }
        }
    }

    async fn execute(
        &self,
        step: &Step,
        document: &str,
        variables: &Value,
        vars: &Vars,
    ) -> Result<GraphQlResponse, StepError> {
        let actor = step
            .actor
            .as_deref()
            .map(|a| vars.interpolate_str(a))
            .transpose()?;
        let session = self.actors.session(actor.as_deref()).await?;
        let document = vars.interpolate_str(document)?;
        let variables = vars.interpolate(variables)?;
        Ok(self
            .shared
            .client
            .execute(&document, &variables, session.token.as_deref())
            .await?)
    }

    async fn run_block(
        &self,
        block: &Block,
        vars: &mut Vars,
        here: &str,
        print: bool,
    ) -> Result<Option<String>, StepError> {
        let previous_index = vars.get(&block.index_var).cloned();
        let mut collected: Vec<Vec<Value>> = vec![Vec::new(); block.collect.len()];
        let mut timings = Vec::with_capacity(block.count as usize);
        if block.parallel {
            let runs = (0..block.count).map(|i| {
                let mut own = vars.clone();
                own.set(block.index_var.clone(), json!(i));
                async move {
                    let trail = format!("{here} › [{i}]");
                    let started = Instant::now();
                    let outcome = self.run_steps(&block.steps, &mut own, &trail, false).await;
                    (outcome, own, started.elapsed())
                }
            });
            let results = futures::future::join_all(runs).await;
            let mut failures = Vec::new();
            for (outcome, own, elapsed) in results {
                timings.push(elapsed);
                for (slot, var) in collected.iter_mut().zip(&block.collect) {
                    slot.push(own.get(var).cloned().unwrap_or(Value::Null));
                }
                if let Err(failure) = outcome {
                    failures.push(failure);
                }
            }
            if !failures.is_empty() {
                let others = failures.len() - 1;
                let mut first = failures.swap_remove(0);
                if others > 0 {
                    first.error = StepError::Parallel {
                        error: Box::new(first.error),
                        others,
                    };
                }
                return Err(StepError::Nested(Box::new(first)));
            }
        } else {
            let print_inner = print && self.shared.options.verbose;
            for i in 0..block.count {
                vars.set(block.index_var.clone(), json!(i));
                let trail = format!("{here} › [{i}]");
                let started = Instant::now();
                self.run_steps(&block.steps, vars, &trail, print_inner)
                    .await
                    .map_err(|failure| StepError::Nested(Box::new(failure)))?;
                timings.push(started.elapsed());
                for (slot, var) in collected.iter_mut().zip(&block.collect) {
                    slot.push(vars.get(var).cloned().unwrap_or(Value::Null));
                }
            }
        }
        match previous_index {
            Some(value) => vars.set(block.index_var.clone(), value),
            None => vars.remove(&block.index_var),
        }
        for (var, values) in block.collect.iter().zip(collected) {
            vars.set(var.clone(), Value::Array(values));
        }
        timings.sort();
        let median = timings.get(timings.len() / 2).copied().unwrap_or_default();
        let slowest = timings.last().copied().unwrap_or_default();
        Ok(Some(format!(
            "{}× {}, each median {} max {}",
            block.count,
            if block.parallel { "at once" } else { "in turn" },
            format_duration(median),
            format_duration(slowest)
        )))
    }

    async fn run_shop(
        &self,
        args: &[String],
        within: Duration,
        vars: &Vars,
    ) -> Result<Value, StepError> {
        let args = args
            .iter()
            .map(|a| vars.interpolate_str(a))
            .collect::<Result<Vec<_>, _>>()?;
        let command = args.join(" ");
        let shop_error = |outcome: String, stderr: String| StepError::Shop {
            command: command.clone(),
            outcome,
            stderr,
        };
        let Some(program) = &self.shared.options.shop_program else {
            return Err(shop_error(
                "cannot run: no `shop` executable configured (RunOptions::shop_program)".into(),
                String::new(),
            ));
        };
        let mut process = tokio::process::Command::new(program);
        process
            .args(&args)
            .envs(self.shared.options.shop_env.iter().cloned())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(within, process.output()).await {
            Err(_) => {
                return Err(shop_error(
                    format!("did not finish within {within:?}"),
                    String::new(),
                ))
            }
            Ok(Err(error)) => {
                return Err(shop_error(
                    format!("cannot start {}: {error}", program.display()),
                    String::new(),
                ))
            }
            Ok(Ok(output)) => output,
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(shop_error(
                format!("{}", output.status),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(":\n{}", tail.join("\n"))
                },
            ));
        }
        Ok(json!({
            "status": output.status.code(),
            "stdout": stdout.trim_end(),
            "stderr": stderr.trim_end(),
            "lines": stdout.lines().collect::<Vec<_>>(),
        }))
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// For a step with `expect_error`: the matching error as `{"error": {code, message}}`.
fn expected_error(expected: &str, response: GraphQlResponse) -> Result<Value, StepError> {
    if response.errors.is_empty() {
        return Err(StepError::MissingError {
            expected: expected.to_owned(),
            data: abbreviate(&response.data),
        });
    }
    match response
        .errors
        .iter()
        .find(|e| e.code.as_deref() == Some(expected))
    {
        Some(error) => Ok(json!({"error": {"code": error.code, "message": error.message}})),
        None => Err(StepError::WrongError {
            expected: expected.to_owned(),
            errors: response.errors,
        }),
    }
}

/// Checks the step's expectations on `doc`, then captures its variables.
fn finish(step: &Step, doc: &Value, vars: &mut Vars) -> Result<(), StepError> {
    if let Some(failure) = evaluate_all(&step.expect, doc, vars)? {
        return Err(StepError::Expectation(failure));
    }
    capture(step, doc, vars)
}

fn capture(step: &Step, doc: &Value, vars: &mut Vars) -> Result<(), StepError> {
    for (var, path) in &step.capture {
        let path = vars.interpolate_str(path)?;
        let value = lookup(doc, &path).ok_or_else(|| StepError::Capture {
            var: var.clone(),
            path: path.clone(),
            doc: abbreviate(doc),
        })?;
        vars.set(var.clone(), value);
    }
    Ok(())
}
