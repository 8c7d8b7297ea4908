//! `compose.yaml`, the Dockerfile and the Prometheus configuration, checked
//! against the code: commands, environment variables, ports, health checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_yaml::Value;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn compose() -> Value {
    let mut value: Value =
        serde_yaml::from_str(&read("compose.yaml")).expect("compose.yaml parses");
    value.apply_merge().expect("merge keys resolve");
    value
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    compose["services"]
        .as_mapping()
        .expect("compose.yaml has services")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// The services that run the shop image.
fn shop_services(compose: &Value) -> BTreeMap<String, Value> {
    services(compose)
        .into_iter()
        .filter(|(_, s)| s["image"].as_str() == Some("shop:latest"))
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => String::new(),
                        other => panic!("unexpected env value {other:?}"),
                    };
                    (k.as_str().unwrap().to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `shop <args> --help`, which must succeed.
fn help(args: &[String]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(args)
        .arg("--help")
        .output()
        .expect("shop runs");
    assert!(
        output.status.success(),
        "`shop {} --help` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `SHOP_…` variables a help text documents (`[env: SHOP_X=…]`).
fn documented_env(help: &str) -> BTreeSet<String> {
    help.match_indices("[env: ")
        .map(|(at, marker)| {
            help[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| name.starts_with("SHOP_"))
        .collect()
}

fn listen_port(service: &Value) -> Option<u16> {
    let listen = environment(service).get("SHOP_LISTEN")?.clone();
    let (host, port) = listen.rsplit_once(':')?;
    assert_eq!(
        host, "0.0.0.0",
        "a container listens on every interface: {listen}"
    );
    port.parse().ok()
}

/// `(host, port)` of an `http://host:port…` or `amqp://…@host:port/…` URL.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = authority.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

#[test]
fn every_component_of_the_system_is_a_compose_service() {
    let compose = compose();
    let commands: BTreeSet<Vec<String>> = shop_services(&compose)
        .values()
        .map(|s| strings(&s["command"]))
        .collect();
    let mut expected: Vec<Vec<String>> = vec![
        vec!["event-store".into()],
        vec!["saga".into()],
        vec!["query-api".into()],
    ];
    for service in command_services::ServiceName::ALL {
        expected.push(vec!["command-service".into(), service.as_str().into()]);
    }
    for projector in projectors::ProjectorName::ALL {
        expected.push(vec!["projector".into(), projector.as_str().into()]);
    }
    for command in expected {
        assert!(
            commands.contains(&command),
            "no service runs `shop {}`",
            command.join(" ")
        );
    }
    assert!(services(&compose).contains_key("rabbitmq"));
}

#[test]
fn every_shop_service_runs_a_real_subcommand_with_a_known_name() {
    let compose = compose();
    for (name, service) in shop_services(&compose) {
        let command = strings(&service["command"]);
        assert!(!command.is_empty(), "{name} has no command");
        assert!(
            service.get("entrypoint").is_none(),
            "{name} overrides the entrypoint"
        );
        help(&command);
        match command[0].as_str() {
            "command-service" => {
                let parsed = command[1].parse::<command_services::ServiceName>();
                assert!(parsed.is_ok(), "{name}: {parsed:?}");
            }
            "projector" => {
                let parsed = command[1].parse::<projectors::ProjectorName>();
                assert!(parsed.is_ok(), "{name}: {parsed:?}");
            }
            _ => assert_eq!(command.len(), 1, "{name}: unexpected arguments {command:?}"),
        }
    }
}

#[test]
fn every_shop_variable_compose_sets_is_one_the_component_reads() {
    let compose = compose();
    let global = documented_env(&help(&[]));
    for (name, service) in shop_services(&compose) {
        let command = strings(&service["command"]);
        let mut reads = documented_env(&help(&command));
        reads.extend(global.iter().cloned());
        for variable in environment(&service).keys() {
            if variable.starts_with("SHOP_") {
                assert!(
                    reads.contains(variable),
                    "{name} sets {variable}, but `shop {} --help` reads only {reads:?}",
                    command.join(" ")
                );
            } else {
                assert!(
                    variable.starts_with("OTEL_") || variable == "RUST_LOG",
                    "{name} sets {variable}, which nothing reads"
                );
            }
        }
    }
}

#[test]
fn listen_ports_agree_with_health_checks_published_ports_and_the_code() {
    let compose = compose();
    for (name, service) in shop_services(&compose) {
        let port = listen_port(&service).unwrap_or_else(|| panic!("{name} sets no SHOP_LISTEN"));
        let check = strings(&service["healthcheck"]["test"]).join(" ");
        assert!(
            check.contains(&format!("http://127.0.0.1:{port}/ready")),
            "{name}: the health check `{check}` does not ask /ready on port {port}"
        );
        for published in strings(&service["ports"]) {
            let container = published.rsplit(':').next().unwrap();
            assert_eq!(container, port.to_string(), "{name} publishes {published}");
        }
        let command = strings(&service["command"]);
        let default = match command[0].as_str() {
            "command-service" => command[1]
                .parse::<command_services::ServiceName>()
                .unwrap()
                .default_port(),
            "projector" => command[1]
                .parse::<projectors::ProjectorName>()
                .unwrap()
                .default_port(),
            _ => {
                let help = help(&command);
                let at = help.find("SHOP_LISTEN").expect("documents SHOP_LISTEN");
                let default = &help[at..];
                let default = &default[default
                    .find("[default: ")
                    .expect("a default listen address")..];
                let address = default["[default: ".len()..].split(']').next().unwrap();
                address.rsplit(':').next().unwrap().parse().unwrap()
            }
        };
        assert_eq!(
            port, default,
            "{name} listens on {port}, the code's default is {default}"
        );
    }
    let graphiql = &services(&compose)["query-api"];
    assert!(strings(&graphiql["ports"]).contains(&"8080:8080".to_owned()));
    let rabbitmq = &services(&compose)["rabbitmq"];
    assert!(strings(&rabbitmq["ports"]).contains(&"15672:15672".to_owned()));
    assert!(rabbitmq["image"]
        .as_str()
        .unwrap()
        .starts_with("rabbitmq:3-management"));
}

#[test]
fn every_url_a_service_is_given_points_at_a_service_listening_there() {
    let compose = compose();
    let all = services(&compose);
    let ports: BTreeMap<String, u16> = shop_services(&compose)
        .iter()
        .filter_map(|(name, s)| Some((name.clone(), listen_port(s)?)))
        .collect();
    for (name, service) in &all {
        for (variable, value) in environment(service) {
            let Some((host, port)) = host_and_port(&value) else {
                continue;
            };
            if host == "rabbitmq" {
                assert_eq!(port, 5672, "{name}: {variable}={value}");
                continue;
            }
            if host == "jaeger" || host == "prometheus" {
                continue;
            }
            assert_eq!(
                ports.get(&host),
                Some(&port),
                "{name}: {variable}={value} does not reach a service listening there"
            );
        }
    }
}

#[test]
fn every_dependency_waits_for_a_healthy_service_with_a_health_check() {
    let compose = compose();
    let all = services(&compose);
    for (name, service) in &all {
        let Some(depends) = service["depends_on"].as_mapping() else {
            assert!(
                service.get("depends_on").is_none(),
                "{name}: depends_on must name conditions"
            );
            continue;
        };
        for (dependency, condition) in depends {
            let dependency = dependency.as_str().unwrap();
            assert_eq!(
                condition["condition"].as_str(),
                Some("service_healthy"),
                "{name} → {dependency}"
            );
            let target = all
                .get(dependency)
                .unwrap_or_else(|| panic!("{name} depends on unknown {dependency}"));
            assert!(
                target.get("healthcheck").is_some(),
                "{dependency} has no health check"
            );
        }
    }
    for (name, service) in shop_services(&compose) {
        if name != "event-store" && !strings(&service["command"]).is_empty() {
            assert!(
                service["depends_on"]
                    .as_mapping()
                    .is_some_and(|d| !d.is_empty()),
                "{name} starts without waiting for anything"
            );
        }
        let broker = environment(&service).contains_key("SHOP_AMQP");
        if broker {
            assert!(
                service["depends_on"].get("rabbitmq").is_some(),
                "{name} uses RabbitMQ but does not wait for it"
            );
        }
    }
}

#[test]
fn stateful_components_keep_their_data_in_volumes() {
    let compose = compose();
    let volumes = compose["volumes"].as_mapping().expect("named volumes");
    for (name, service) in shop_services(&compose) {
        let Some(data) = environment(&service).get("SHOP_DATA").cloned() else {
            continue;
        };
        let mounts = strings(&service["volumes"]);
        let mount = mounts
            .iter()
            .find(|m| data.starts_with(m.split(':').nth(1).unwrap_or("-")))
            .unwrap_or_else(|| panic!("{name} keeps {data} outside any volume: {mounts:?}"));
        let volume = mount.split(':').next().unwrap();
        assert!(
            volumes.contains_key(volume),
            "{name} mounts {volume}, which is not declared"
        );
    }
}

#[test]
fn the_dockerfile_builds_the_shop_binary_that_compose_runs() {
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("cargo build --profile dist --locked -p shop --bin shop"),
        "the build stage does not build the shop binary"
    );
    assert!(dockerfile.contains("target/dist/shop"));
    // The profile it builds with is the workspace's, made from release.
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml parses");
    let dist = &manifest["profile"]["dist"];
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(dist["lto"].as_str(), Some("fat"));
    let runtime = dockerfile
        .rsplit("\nFROM ")
        .next()
        .expect("a runtime stage");
    let entrypoint = runtime
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec-form ENTRYPOINT");
    let copied = runtime
        .lines()
        .filter(|l| l.starts_with("COPY --from=build "))
        .any(|l| l.ends_with(&format!(" {}", entrypoint[0])));
    assert!(
        copied,
        "the runtime stage does not copy the binary to {}",
        entrypoint[0]
    );
    assert!(entrypoint[0].ends_with("/shop"));
    assert!(runtime.contains("curl"), "the health checks need curl");

    let compose = compose();
    for (name, service) in shop_services(&compose) {
        assert_eq!(
            service["build"]["dockerfile"].as_str(),
            Some("Dockerfile"),
            "{name} is not built from the Dockerfile"
        );
        assert_eq!(service["build"]["context"].as_str(), Some("."));
    }
    let ignored = read(".dockerignore");
    assert!(
        ignored.lines().any(|l| l.trim() == "target/"),
        "the build context would carry target/"
    );
}

#[test]
fn prometheus_scrapes_every_component_at_its_listen_port() {
    let compose = compose();
    let config: Value = serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml parses");
    let mut targets = BTreeSet::new();
    for job in config["scrape_configs"]
        .as_sequence()
        .expect("scrape configs")
    {
        for static_config in job["static_configs"].as_sequence().unwrap() {
            targets.extend(strings(&static_config["targets"]));
        }
    }
    let expected: BTreeSet<String> = shop_services(&compose)
        .iter()
        .map(|(name, s)| format!("{name}:{}", listen_port(s).unwrap()))
        .collect();
    assert_eq!(targets, expected);
    let prometheus = &services(&compose)["prometheus"];
    assert_eq!(strings(&prometheus["profiles"]), vec!["monitoring"]);
    assert_eq!(
        strings(&services(&compose)["jaeger"]["profiles"]),
        vec!["tracing"]
    );
}

#[test]
fn grafana_is_provisioned_with_the_dashboard_and_the_prometheus_data_source() {
    let datasources: Value = serde_yaml::from_str(&read(
        "deploy/grafana/provisioning/datasources/prometheus.yml",
    ))
    .unwrap();
    let uid = datasources["datasources"][0]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        datasources["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/shop.json")).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for panel in panels {
        assert_eq!(panel["datasource"]["uid"].as_str(), Some(uid.as_str()));
        assert!(panel["targets"].as_array().is_some_and(|t| !t.is_empty()));
    }
    let provider: Value =
        serde_yaml::from_str(&read("deploy/grafana/provisioning/dashboards/shop.yml")).unwrap();
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let compose = compose();
    let grafana = &services(&compose)["grafana"];
    let mounts = strings(&grafana["volumes"]);
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("./deploy/grafana/dashboards:")
                && m.split(':').nth(1) == Some(path.as_str())),
        "the dashboards are not mounted at {path}: {mounts:?}"
    );
}
