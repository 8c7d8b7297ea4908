//! The scenario file format: TOML, one scenario per file.
//!
//! ```toml
//! name = "happy path to DELIVERED"
//! description = "one customer buys one product and receives it"
//!
//! [vars]                          # interpolated once, in any order
//! sku = "MUG-${run_id}"
//!
//! [[step]]
//! name = "admin adds the mug"
//! as = "admin"                    # "admin", a customer name, or absent (anonymous)
//! graphql = 'mutation { addProduct(input: {sku: "${sku}", name: "Mug", description: "d", priceCents: 1200, category: "kitchen"}) { id token } }'
//! capture = { product_token = "addProduct.token" }
//! expect = [{ path = "addProduct.id", equals = "${sku}" }]
//!
//! [[step]]
//! name = "the order is delivered"
//! as = "alice"                    # registered and logged in on first use
//! wait = 'query { order(id: "${order_id}") { status } }'
//! within = "15s"                  # deadline (default 10s); polled every `every` (default 50ms)
//! expect = [{ path = "order.status", equals = "DELIVERED" }]
//! ```
//!
//! Step kinds (exactly one per step):
//! - `graphql = DOC` (with optional `variables = {..}`): one query or mutation;
//! - `wait = DOC`: polls the query until every expectation holds, or fails at `within`;
//! - `repeat = N` / `parallel = N` with nested `[[step.step]]`: a loop, sequential or
//!   all at once; `${index}` (or the name in `index = ".."`) counts from 0, and
//!   `collect = ["var", ..]` gathers each iteration's value of `var` into an array;
//! - `load = { rate, duration, .. }`: an open-loop stream of orders, see [`LoadSpec`];
//! - `shop = ["replay", "--all", ..]`: runs a `shop` subcommand (the `shop` the
//!   runner was given); its result is `{status, stdout, stderr, lines}`, and with
//!   `every = ".."` it runs again until its expectations hold, up to `within`;
//! - none of the above, only `expect`: checks the variables themselves.
//!
//! Every step may have `expect` (see [`Expectation`]), `capture = { var = "path" }`
//! and `expect_error = "CODE"` (the step must fail with that GraphQL error code).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::variables::references;

/// The longest `repeat`/`parallel` count accepted.
pub const MAX_ITERATIONS: u32 = 10_000;

/// Why a scenario file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A step is well-formed TOML but makes no sense.
    #[error("{file}: step {step}: {reason}")]
    InvalidStep {
        /// The file.
        file: PathBuf,
        /// Which step (numbered from 1, nested steps as `3.2`), and its name.
        step: String,
        /// What is wrong.
        reason: String,
    },
}

/// One parsed scenario file.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Where it was read from (or a label for scenarios parsed from text).
    pub file: PathBuf,
    /// Its name (the file stem when the file names none).
    pub name: String,
    /// What it shows.
    pub description: Option<String>,
    /// The `[vars]` table, not yet interpolated.
    pub vars: BTreeMap<String, Value>,
    /// The steps in order.
    pub steps: Vec<Step>,
}

/// One step of a scenario.
#[derive(Clone, Debug)]
pub struct Step {
    /// The step's name as written (may contain `${..}`).
    pub name: String,
    /// Who acts: `admin`, a customer name (may contain `${..}`), or nobody.
    pub actor: Option<String>,
    /// What the step does.
    pub kind: StepKind,
    /// What must hold of the step's result.
    pub expect: Vec<Expectation>,
    /// Variables to set from the result: variable name → path.
    pub capture: BTreeMap<String, String>,
    /// The GraphQL error code the step must fail with (`CONFLICT`, …).
    pub expect_error: Option<String>,
}

/// What a step does.
#[derive(Clone, Debug)]
pub enum StepKind {
    /// One GraphQL operation.
    GraphQl {
        /// The document (may contain `${..}`).
        document: String,
        /// The GraphQL variables (strings may contain `${..}`).
        variables: Value,
    },
    /// Polls a GraphQL query until every expectation holds.
    Wait {
        /// The query (may contain `${..}`).
        document: String,
        /// The GraphQL variables.
        variables: Value,
        /// The deadline.
        within: Duration,
        /// Time between polls.
        every: Duration,
    },
    /// A loop over nested steps.
    Block(Block),
    /// A stream of orders at a fixed rate.
    Load(Box<LoadSpec>),
    /// A `shop` subcommand run against the target.
    Shop {
        /// The arguments after `shop` (may contain `${..}`).
        args: Vec<String>,
        /// The deadline for the command (with `every`: for all the runs together).
        within: Duration,
        /// Run again after this long until the expectations hold (a view catching up).
        every: Option<Duration>,
    },
    /// Expectations on the variables themselves.
    Check,
}

/// A loop: `repeat` (one after the other) or `parallel` (all at once).
#[derive(Clone, Debug)]
pub struct Block {
    /// All iterations at once, each with its own copy of the variables.
    pub parallel: bool,
    /// How many iterations.
    pub count: u32,
    /// The variable holding the iteration number (from 0).
    pub index_var: String,
    /// Variables gathered into arrays (one element per iteration) after the loop.
    pub collect: Vec<String>,
    /// The body.
    pub steps: Vec<Step>,
}

/// An open-loop load: `rate` orders per second for `duration`, each followed
/// until its status is final; reports achieved orders/s and latencies from
/// the order mutation to the confirmed status.
///
/// The step's result (for `expect` and `capture`) is an object with `orders`,
/// `placed`, `confirmed`, `cancelled`, `failed`, `pending`, `achieved_rate`,
/// `confirmed_rate`, `p50_ms`, `p99_ms`, `max_ms`, `p50_recorded_ms`,
/// `p99_recorded_ms` and `first_error`.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Orders started per second.
    pub rate: f64,
    /// For how long orders are started.
    pub duration: Duration,
    /// How many customers take turns (the step's `as`, with `${index}` from 0).
    pub customers: u32,
    /// Run before each order, outside the timing (e.g. `addToCart` before `checkout`).
    pub before: Option<String>,
    /// The timed mutation; `${n}` is the order's number.
    pub order: String,
    /// The mutation's GraphQL variables (strings may contain `${..}`): a
    /// fixed document with variables is what a client app sends, and what
    /// the query API's parsed-document cache serves.
    pub order_variables: Value,
    /// Where the order id is in the mutation's result.
    pub order_id: String,
    /// The query polled for the status; `${order_id}` is the order's id.
    pub status_query: String,
    /// The status query's GraphQL variables (strings may contain `${..}`).
    pub status_variables: Value,
    /// Where the status is in that query's result.
    pub status_path: String,
    /// The status that ends the clock.
    pub confirmed: String,
    /// Statuses that are final but not confirmed.
    pub cancelled: Vec<String>,
    /// How long each order may take to reach a final status.
    pub settle: Duration,
    /// Time between status polls, at first.
    pub poll: Duration,
    /// The longest time between status polls: after `poll`, an order waits a
    /// quarter of the time it has taken so far before the next poll, up to
    /// this (so the clock's error stays under 25% while a backlog is not
    /// made worse by its own polling). Equal to `poll` unless given.
    pub poll_max: Duration,
    /// Where the status query's result holds the order's status timeline, a
    /// list of `{status, at}` (RFC 3339): when given, the report also has the
    /// time from the mutation to the confirmed entry's own timestamp, which
    /// does not depend on how often the status is polled or how far the view
    /// lags.
    pub timeline_path: Option<String>,
}

/// A check on one field of a step's result.
///
/// Written `{ path = "order.status", equals = "CONFIRMED" }`. `path` is a
/// dot path (`order.lines.0.sku`; `-1` is the last element; `*` maps over an
/// array). The checks, any number of them: `equals`, `not_equals`,
/// `contains` (substring, array element, or object subset), `not_contains`,
/// `one_of = [..]`, `gte`, `gt`, `lte`, `lt`, `count` / `count_gte` /
/// `count_lte` (array length), `exists = true|false`. With `where = V`, an
/// array is first filtered to the elements matching `V` (equal, or for
/// objects a subset), so `{ path = "statuses", where = "CONFIRMED", count = 10 }`
/// counts confirmed orders. Expected values may contain `${..}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// Where the field is (may contain `${..}`).
    pub path: String,
    /// Keeps only the array elements matching this value.
    pub filter: Option<Value>,
    /// The checks, all of which must hold.
    pub checks: Vec<Check>,
}

/// One comparison of an [`Expectation`].
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// Equal (numbers compare by value).
    Equals(Value),
    /// Not equal.
    NotEquals(Value),
    /// Substring, array element, or object subset.
    Contains(Value),
    /// The opposite of `Contains`.
    NotContains(Value),
    /// Equal to one of these.
    OneOf(Vec<Value>),
    /// A number at least this.
    Gte(Value),
    /// A number greater than this.
    Gt(Value),
    /// A number at most this.
    Lte(Value),
    /// A number less than this.
    Lt(Value),
    /// An array of exactly this length.
    Count(Value),
    /// An array of at least this length.
    CountGte(Value),
    /// An array of at most this length.
    CountLte(Value),
    /// Present and not null (`true`), or absent or null (`false`).
    Exists(bool),
}

impl Check {
    /// How the check is written in a file, e.g. `equals`.
    pub fn keyword(&self) -> &'static str {
        match self {
            Check::Equals(_) => "equals",
            Check::NotEquals(_) => "not_equals",
            Check::Contains(_) => "contains",
            Check::NotContains(_) => "not_contains",
            Check::OneOf(_) => "one_of",
            Check::Gte(_) => ">=",
            Check::Gt(_) => ">",
            Check::Lte(_) => "<=",
            Check::Lt(_) => "<",
            Check::Count(_) => "count",
            Check::CountGte(_) => "count >=",
            Check::CountLte(_) => "count <=",
            Check::Exists(_) => "exists",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    #[serde(rename = "as")]
    actor: Option<String>,
    graphql: Option<String>,
    wait: Option<String>,
    variables: Option<Value>,
    within: Option<String>,
    every: Option<String>,
    repeat: Option<u32>,
    parallel: Option<u32>,
    index: Option<String>,
    collect: Option<Vec<String>>,
    step: Option<Vec<RawStep>>,
    load: Option<RawLoad>,
    shop: Option<Vec<String>>,
    #[serde(default)]
    expect: Vec<RawExpectation>,
    #[serde(default)]
    capture: BTreeMap<String, String>,
    expect_error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    rate: f64,
    duration: String,
    customers: Option<u32>,
    before: Option<String>,
    order: String,
    order_variables: Option<Value>,
    order_id: String,
    status_query: Option<String>,
    status_variables: Option<Value>,
    status_path: Option<String>,
    confirmed: Option<String>,
    cancelled: Option<Vec<String>>,
    settle: Option<String>,
    poll: Option<String>,
    poll_max: Option<String>,
    timeline_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectation {
    path: String,
    #[serde(rename = "where")]
    filter: Option<Value>,
    equals: Option<Value>,
    not_equals: Option<Value>,
    contains: Option<Value>,
    not_contains: Option<Value>,
    one_of: Option<Vec<Value>>,
    gte: Option<Value>,
    gt: Option<Value>,
    lte: Option<Value>,
    lt: Option<Value>,
    count: Option<Value>,
    count_gte: Option<Value>,
    count_lte: Option<Value>,
    exists: Option<bool>,
}

const DEFAULT_WITHIN: Duration = Duration::from_secs(10);
const DEFAULT_EVERY: Duration = Duration::from_millis(50);
/// How long the default load status query asks the query API to hold it
/// (`order(id, waitFor, waitMs)`), so an order costs one status request.
const DEFAULT_STATUS_WAIT_MS: u64 = 5_000;
const DEFAULT_SHOP_WITHIN: Duration = Duration::from_secs(300);

/// Variables every run sets: the run's unique id, the target URL, the scenario's name.
pub const BUILT_IN_VARIABLES: [&str; 3] = ["run_id", "target", "scenario"];

/// Variables a load step sets for its own documents: the customer number,
/// the order number and the order id.
pub const LOAD_VARIABLES: [&str; 3] = ["index", "n", "order_id"];

impl Scenario {
    /// Names used as `${..}` somewhere in the scenario but set nowhere in it
    /// (not built in, not in `[vars]`, not captured, collected or a loop index).
    /// A scenario with any of these fails when it reaches them.
    pub fn undefined_variables(&self) -> BTreeSet<String> {
        let mut defined: BTreeSet<String> =
            BUILT_IN_VARIABLES.iter().map(|s| s.to_string()).collect();
        defined.extend(self.vars.keys().cloned());
        let mut used = BTreeSet::new();
        for value in self.vars.values() {
            used_in_value(value, &mut used);
        }
        walk_steps(&self.steps, &mut defined, &mut used);
        used.difference(&defined).cloned().collect()
    }
}

fn walk_steps(steps: &[Step], defined: &mut BTreeSet<String>, used: &mut BTreeSet<String>) {
    for step in steps {
        let mut texts: Vec<&str> = vec![&step.name];
        texts.extend(step.actor.as_deref());
        texts.extend(step.capture.values().map(String::as_str));
        defined.extend(step.capture.keys().cloned());
        for expectation in &step.expect {
            texts.push(&expectation.path);
            if let Some(filter) = &expectation.filter {
                used_in_value(filter, used);
            }
            for check in &expectation.checks {
                match check {
                    Check::OneOf(values) => values.iter().for_each(|v| used_in_value(v, used)),
                    Check::Exists(_) => {}
                    Check::Equals(v)
                    | Check::NotEquals(v)
                    | Check::Contains(v)
                    | Check::NotContains(v)
                    | Check::Gte(v)
                    | Check::Gt(v)
                    | Check::Lte(v)
                    | Check::Lt(v)
                    | Check::Count(v)
                    | Check::CountGte(v)
                    | Check::CountLte(v) => used_in_value(v, used),
                }
            }
        }
        match &step.kind {
            StepKind::GraphQl {
                document,
                variables,
            }
            | StepKind::Wait {
                document,
                variables,
                ..
            } => {
                texts.push(document);
                used_in_value(variables, used);
            }
            StepKind::Block(block) => {
                defined.insert(block.index_var.clone());
                defined.extend(block.collect.iter().cloned());
                walk_steps(&block.steps, defined, used);
            }
            StepKind::Load(load) => {
                defined.extend(LOAD_VARIABLES.iter().map(|s| s.to_string()));
                texts.extend(load.before.as_deref());
                texts.push(&load.order);
                texts.push(&load.status_query);
                used_in_value(&load.order_variables, used);
                used_in_value(&load.status_variables, used);
            }
            StepKind::Shop { args, .. } => texts.extend(args.iter().map(String::as_str)),
            StepKind::Check => {}
        }
        for text in texts {
            used.extend(references(text));
        }
    }
}

fn used_in_value(value: &Value, used: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => used.extend(references(text)),
        Value::Array(items) => items.iter().for_each(|v| used_in_value(v, used)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            used.extend(references(k));
            used_in_value(v, used);
        }),
        _ => {}
    }
}

/// Reads and parses one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, FormatError> {
    let text = std::fs::read_to_string(path).map_err(|source| FormatError::Read {
        file: path.to_owned(),
        source,
    })?;
    parse_str(&text, path)
}

/// Parses a scenario from TOML text; `file` names it in errors.
pub fn parse_str(text: &str, file: &Path) -> Result<Scenario, FormatError> {
    let raw: RawFile = toml::from_str(text).map_err(|error| FormatError::Syntax {
        file: file.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    let name = raw.name.unwrap_or_else(|| {
        file.file_stem().map_or_else(
            || "scenario".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )
    });
    let steps = convert_steps(raw.step, "", file)?;
    if steps.is_empty() {
        return Err(FormatError::InvalidStep {
            file: file.to_owned(),
            step: "-".to_owned(),
            reason: "the scenario has no [[step]]".to_owned(),
        });
    }
    Ok(Scenario {
        file: file.to_owned(),
        name,
        description: raw.description,
        vars: raw.vars,
        steps,
    })
}

fn convert_steps(raw: Vec<RawStep>, prefix: &str, file: &Path) -> Result<Vec<Step>, FormatError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, step)| {
            let number = format!("{prefix}{}", i + 1);
            let label = match &step.name {
                Some(name) => format!("{number} ({name:?})"),
                None => number.clone(),
            };
            convert_step(step, &number, file).map_err(|reason| FormatError::InvalidStep {
                file: file.to_owned(),
                step: label,
                reason,
            })
        })
        .collect()
}

fn convert_step(raw: RawStep, number: &str, file: &Path) -> Result<Step, String> {
    let mut kinds = Vec::new();
    for (present, kind) in [
        (raw.graphql.is_some(), "graphql"),
        (raw.wait.is_some(), "wait"),
        (raw.repeat.is_some(), "repeat"),
        (raw.parallel.is_some(), "parallel"),
        (raw.load.is_some(), "load"),
        (raw.shop.is_some(), "shop"),
    ] {
        if present {
            kinds.push(kind);
        }
    }
    if kinds.len() > 1 {
        return Err(format!(
            "a step does one thing, but this one has {}",
            kinds.join(" and ")
        ));
    }
    let kind_name = kinds.first().copied().unwrap_or("check");
    let refuse_unless = |present: bool, key: &str, allowed: &[&str]| {
        if present && !allowed.contains(&kind_name) {
            Err(format!(
                "`{key}` only applies to {} steps",
                allowed.join("/")
            ))
        } else {
            Ok(())
        }
    };
    refuse_unless(raw.variables.is_some(), "variables", &["graphql", "wait"])?;
    refuse_unless(raw.within.is_some(), "within", &["wait", "shop"])?;
    refuse_unless(raw.every.is_some(), "every", &["wait", "shop"])?;
    refuse_unless(raw.index.is_some(), "index", &["repeat", "parallel"])?;
    refuse_unless(raw.collect.is_some(), "collect", &["repeat", "parallel"])?;
    refuse_unless(raw.step.is_some(), "step", &["repeat", "parallel"])?;
    refuse_unless(
        raw.expect_error.is_some(),
        "expect_error",
        &["graphql", "wait"],
    )?;
    refuse_unless(
        !raw.capture.is_empty(),
        "capture",
        &["graphql", "wait", "load", "shop"],
    )?;
    refuse_unless(raw.actor.is_some(), "as", &["graphql", "wait", "load"])?;
    if kind_name == "wait" && raw.expect_error.is_some() {
        return Err(
            "a wait polls until its expectations hold; use `graphql` with `expect_error`".into(),
        );
    }
    if kind_name == "wait" && raw.expect.is_empty() {
        return Err("a wait step needs at least one `expect` to wait for".into());
    }
    if kind_name == "check" && raw.expect.is_empty() {
        return Err(
            "the step does nothing: give it one of graphql, wait, repeat, parallel, load, shop, or expect"
                .into(),
        );
    }
    let variables = raw.variables.unwrap_or(Value::Object(Default::default()));
    if !variables.is_object() {
        return Err("`variables` must be a table".into());
    }
    let within = raw.within.as_deref().map(parse_duration).transpose()?;
    let every = raw.every.as_deref().map(parse_duration).transpose()?;
    let kind = match kind_name {
        "graphql" => StepKind::GraphQl {
            document: raw.graphql.unwrap_or_default(),
            variables,
        },
        "wait" => StepKind::Wait {
            document: raw.wait.unwrap_or_default(),
            variables,
            within: within.unwrap_or(DEFAULT_WITHIN),
            every: every.unwrap_or(DEFAULT_EVERY),
        },
        "repeat" | "parallel" => {
            let count = raw.repeat.or(raw.parallel).unwrap_or(0);
            if count == 0 || count > MAX_ITERATIONS {
                return Err(format!(
                    "`{kind_name}` must be between 1 and {MAX_ITERATIONS}, got {count}"
                ));
            }
            let body = raw.step.unwrap_or_default();
            if body.is_empty() {
                return Err(format!(
                    "`{kind_name}` needs nested steps: [[step.step]] after it"
                ));
            }
            let index_var = raw.index.unwrap_or_else(|| "index".to_owned());
            check_var_name(&index_var)?;
            let collect = raw.collect.unwrap_or_default();
            for var in &collect {
                check_var_name(var)?;
            }
            StepKind::Block(Block {
                parallel: kind_name == "parallel",
                count,
                index_var,
                collect,
                steps: convert_steps(body, &format!("{number}."), file)
                    .map_err(|e| e.to_string())?,
            })
        }
        "load" => StepKind::Load(Box::new(convert_load(raw.load.ok_or("missing load")?)?)),
        "shop" => {
            let args = raw.shop.unwrap_or_default();
            if args.is_empty() {
                return Err("`shop` needs a subcommand, e.g. [\"replay\", \"--all\"]".into());
            }
            if every.is_some() && raw.expect.is_empty() {
                return Err("a `shop` step with `every` needs an `expect` to wait for".into());
            }
            StepKind::Shop {
                args,
                within: within.unwrap_or(DEFAULT_SHOP_WITHIN),
                every,
            }
        }
        _ => StepKind::Check,
    };
    for var in raw.capture.keys() {
        check_var_name(var)?;
    }
    let expect = raw
        .expect
        .into_iter()
        .map(convert_expectation)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Step {
        name: raw.name.unwrap_or_else(|| format!("{kind_name} {number}")),
        actor: raw.actor,
        kind,
        expect,
        capture: raw.capture,
        expect_error: raw.expect_error,
    })
}

fn convert_load(raw: RawLoad) -> Result<LoadSpec, String> {
    if !(raw.rate > 0.0 && raw.rate <= 100_000.0) {
        return Err(format!(
            "load rate must be above 0 and at most 100000 orders/s, got {}",
            raw.rate
        ));
    }
    let duration = parse_duration(&raw.duration)?;
    if duration.is_zero() {
        return Err("load duration must be above 0".into());
    }
    let customers = raw.customers.unwrap_or(1);
    if customers == 0 || customers > MAX_ITERATIONS {
        return Err(format!(
            "load customers must be between 1 and {MAX_ITERATIONS}, got {customers}"
        ));
    }
    let poll = raw
        .poll
        .as_deref()
        .map(parse_duration)
        .transpose()?
        .unwrap_or(Duration::from_millis(20));
    let confirmed = raw.confirmed.unwrap_or_else(|| "CONFIRMED".to_owned());
    let cancelled = raw
        .cancelled
        .unwrap_or_else(|| vec!["CANCELLED".to_owned()]);
    let table = |variables: Option<Value>, field: &str| match variables {
        None => Ok(Value::Object(Default::default())),
        Some(table @ Value::Object(_)) => Ok(table),
        Some(_) => Err(format!("load `{field}` must be a table")),
    };
    let order_variables = table(raw.order_variables, "order_variables")?;
    let (status_query, status_variables) = match raw.status_query {
        Some(query) => (query, table(raw.status_variables, "status_variables")?),
        None => {
            if raw.status_variables.is_some() {
                return Err("load `status_variables` needs a `status_query`".into());
            }
            // One request that the query API holds until the status is final
            // for the clock; one document for every order.
            let statuses = std::iter::once(&confirmed)
                .chain(&cancelled)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!(
                    "query LoadStatus($id: ID!) {{ order(id: $id, waitFor: [{statuses}], waitMs: {DEFAULT_STATUS_WAIT_MS}) {{ status }} }}"
                ),
                serde_json::json!({ "id": "${order_id}" }),
            )
        }
    };
    Ok(LoadSpec {
        rate: raw.rate,
        duration,
        customers,
        before: raw.before,
        order: raw.order,
        order_variables,
        order_id: raw.order_id,
        status_query,
        status_variables,
        status_path: raw.status_path.unwrap_or_else(|| "order.status".to_owned()),
        confirmed,
        cancelled,
        settle: raw
            .settle
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .unwrap_or(Duration::from_secs(30)),
        poll,
        poll_max: raw
            .poll_max
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .unwrap_or(poll),
        timeline_path: raw.timeline_path,
    })
}

fn convert_expectation(raw: RawExpectation) -> Result<Expectation, String> {
    let mut checks = Vec::new();
    let mut add = |value: Option<Value>, make: fn(Value) -> Check| {
        if let Some(value) = value {
            checks.push(make(value));
        }
    };
    add(raw.equals, Check::Equals);
    add(raw.not_equals, Check::NotEquals);
    add(raw.contains, Check::Contains);
    add(raw.not_contains, Check::NotContains);
    add(raw.gte, Check::Gte);
    add(raw.gt, Check::Gt);
    add(raw.lte, Check::Lte);
    add(raw.lt, Check::Lt);
    add(raw.count, Check::Count);
    add(raw.count_gte, Check::CountGte);
    add(raw.count_lte, Check::CountLte);
    if let Some(options) = raw.one_of {
        checks.push(Check::OneOf(options));
    }
    if let Some(exists) = raw.exists {
        checks.push(Check::Exists(exists));
    }
    if checks.is_empty() {
        return Err(format!(
            "the expectation on {:?} checks nothing: add equals, contains, gte, count, …",
            raw.path
        ));
    }
    Ok(Expectation {
        path: raw.path,
        filter: raw.filter,
        checks,
    })
}

fn check_var_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid variable name {name:?}: use letters, digits, '_' and '-'"
        ))
    }
}

/// Parses `250ms`, `10s`, `1.5s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 250ms, 10s, 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: the unit must be ms, s or m"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, FormatError> {
        parse_str(text, Path::new("t.toml"))
    }

    #[test]
    fn durations_accept_milliseconds_seconds_and_minutes() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn a_step_with_two_kinds_is_refused_naming_the_step() {
        let err = parse(
            r#"
[[step]]
name = "confused"
graphql = "query { me { id } }"
wait = "query { me { id } }"
expect = [{ path = "me.id", exists = true }]
"#,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("step 1 (\"confused\")"), "{message}");
        assert!(message.contains("graphql and wait"), "{message}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let err = parse("[[step]]\ngraphql = \"q\"\nexpct = []\n").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("expct"), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn an_expectation_without_a_check_is_refused() {
        let err = parse("[[step]]\ngraphql = \"q\"\nexpect = [{ path = \"a\" }]\n").unwrap_err();
        assert!(err.to_string().contains("checks nothing"), "{err}");
    }

    #[test]
    fn a_wait_needs_something_to_wait_for() {
        let err = parse("[[step]]\nwait = \"q\"\n").unwrap_err();
        assert!(err.to_string().contains("at least one `expect`"), "{err}");
    }

    #[test]
    fn nested_steps_are_numbered_through_their_block() {
        let err = parse(
            r#"
[[step]]
parallel = 3
[[step.step]]
graphql = "q"
[[step.step]]
repeat = 0
"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("step 1.2"), "{err}");
        assert!(err.to_string().contains("between 1 and"), "{err}");
    }

    #[test]
    fn a_block_collects_into_named_variables() {
        let scenario = parse(
            r#"
[[step]]
parallel = 30
index = "buyer"
collect = ["status"]
[[step.step]]
as = "buyer-${buyer}"
graphql = "q"
capture = { status = "order.status" }
"#,
        )
        .unwrap();
        let StepKind::Block(block) = &scenario.steps[0].kind else {
            panic!("expected a block, got {:?}", scenario.steps[0].kind)
        };
        assert!(block.parallel);
        assert_eq!(block.count, 30);
        assert_eq!(block.index_var, "buyer");
        assert_eq!(block.collect, vec!["status".to_owned()]);
        assert_eq!(block.steps[0].actor.as_deref(), Some("buyer-${buyer}"));
    }

    #[test]
    fn variables_used_but_set_nowhere_are_listed() {
        let scenario = parse(
            r#"
[vars]
sku = "MUG-${run_id}"
[[step]]
parallel = 2
collect = ["status"]
[[step.step]]
as = "buyer-${index}"
graphql = 'query { product(sku: "${sku}") { name } } ${typo}'
capture = { status = "product.name" }
[[step]]
expect = [{ path = "status", count = "${expected}" }]
"#,
        )
        .unwrap();
        assert_eq!(
            scenario
                .undefined_variables()
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["expected".to_owned(), "typo".to_owned()]
        );
    }

    #[test]
    fn a_load_sends_fixed_documents_with_variables() {
        let scenario = parse(
            r#"
[[step]]
  [step.load]
  rate = 5
  duration = "1s"
  order = 'mutation O($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }'
  order_variables = { input = { lines = [{ sku = "${sku}", quantity = 1 }] } }
  order_id = "placeOrder.id"
"#,
        )
        .unwrap();
        let StepKind::Load(load) = &scenario.steps[0].kind else {
            panic!("a load step");
        };
        assert_eq!(load.order_variables["input"]["lines"][0]["quantity"], 1);
        // The default status query is one document; the order id is a variable.
        assert!(load.status_query.contains("order(id: $id"));
        assert!(!load.status_query.contains("${"));
        assert_eq!(
            load.status_variables,
            serde_json::json!({"id": "${order_id}"})
        );
        // `sku` is used in the variables and set nowhere; `order_id` and `n` are the load's own.
        assert_eq!(
            scenario
                .undefined_variables()
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["sku".to_owned()]
        );

        let load = |extra: &str| {
            parse(&format!(
                "[[step]]\n[step.load]\nrate = 1\nduration = \"1s\"\norder = \"m\"\norder_id = \"x\"\n{extra}\n"
            ))
        };
        let err = load("order_variables = 3").unwrap_err();
        assert!(
            err.to_string()
                .contains("`order_variables` must be a table"),
            "{err}"
        );
        let err = load("status_variables = { id = \"1\" }").unwrap_err();
        assert!(err.to_string().contains("needs a `status_query`"), "{err}");
        let ok = load("status_query = \"q\"\nstatus_variables = { id = \"${order_id}\" }").unwrap();
        let StepKind::Load(spec) = &ok.steps[0].kind else {
            panic!("a load step");
        };
        assert_eq!(spec.status_query, "q");
    }

    #[test]
    fn options_that_do_not_fit_the_step_kind_are_refused() {
        let err = parse("[[step]]\ngraphql = \"q\"\nwithin = \"1s\"\n").unwrap_err();
        assert!(err.to_string().contains("`within` only applies"), "{err}");
    }
}
