//! The scenario files under `scenarios/`: they parse, and every variable
//! they use is set somewhere in them.

use std::path::PathBuf;

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "toml") && !path.ends_with("Cargo.toml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_file_parses_and_uses_only_variables_it_sets() {
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenario files found");
    for file in files {
        let scenario = scenarios::load_file(&file).unwrap_or_else(|e| panic!("{e}"));
        let undefined = scenario.undefined_variables();
        assert!(
            undefined.is_empty(),
            "{}: variables used but never set: {undefined:?}",
            file.display()
        );
    }
}

#[test]
fn the_scenarios_the_project_promises_are_all_there() {
    let names: Vec<String> = scenario_files()
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "happy_path",
        "out_of_stock",
        "payment_declined",
        "transient_payment_error",
        "cancel_before_dispatch",
        "cancel_after_dispatch",
        "last_units",
        "search_and_recommendations",
        "replay",
        "load",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing scenarios/{expected}.toml in {names:?}"
        );
    }
}
