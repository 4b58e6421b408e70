//! The architecture file format (cell + path, JSON): round trips and rejected inputs.

use cell::{CellEdge, Genotype, Primitive};
use trellis::{Architecture, ArchitectureError, NetworkPath};

const PAPER_JSON: &str = r#"{
  "cell": [
    [[0, "dil_conv_5x5"], [1, "sep_conv_3x3"]],
    [[0, "sep_conv_3x3"], [1, "dil_conv_3x3"]],
    [[0, "sep_conv_3x3"], [3, "sep_conv_3x3"]],
    [[2, "sep_conv_5x5"], [4, "sep_conv_5x5"]],
    [[3, "sep_conv_5x5"], [5, "dil_conv_5x5"]]
  ],
  "path": [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1]
}"#;

fn parse_err(text: &str) -> String {
    match Architecture::from_json(text, "arch.json") {
        Ok(a) => panic!("accepted an invalid architecture: {a:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_paper_architecture_reads_as_written_in_the_format() {
    let arch = Architecture::from_json(PAPER_JSON, "paper.json").unwrap();
    assert_eq!(arch, Architecture::paper());
    assert_eq!(arch.cell.blocks()[4][1], CellEdge { input: 5, op: Primitive::DilConv5x5 });
    assert_eq!(arch.path.levels(), [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1]);
}

#[test]
fn files_round_trip_and_keep_other_fields() {
    let dir = std::env::temp_dir().join(format!("adl-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("arch.json");
    let mut arch = Architecture::paper();
    arch.extra.insert("epoch".into(), serde_json::json!(39));
    arch.extra.insert("note".into(), serde_json::json!({"source": "test"}));
    arch.save(&file).unwrap();
    assert!(!dir.join("arch.json.tmp").exists(), "the temporary file is renamed away");
    let back = Architecture::load(&file).unwrap();
    assert_eq!(back, arch);
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(value["cell"][0][0], serde_json::json!([0, "dil_conv_5x5"]));
    assert_eq!(value["epoch"], 39);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_decoded_genotype_round_trips_through_json() {
    let mut weights = vec![[0.0; 8]; 20];
    for (edge, row) in weights.iter_mut().enumerate() {
        row[(edge % 7) + 1] = 1.0 + edge as f64;
    }
    let genotype = Genotype::decode(&weights, 5).unwrap();
    let arch = Architecture {
        cell: genotype.clone(),
        path: NetworkPath::new(vec![1, 2, 3, 3]).unwrap(),
        extra: Default::default(),
    };
    assert_eq!(Architecture::from_json(&arch.to_json(), "mem").unwrap().cell, genotype);
}

#[test]
fn bad_files_are_rejected_with_what_is_wrong() {
    let unknown_op = PAPER_JSON.replace("dil_conv_3x3", "dil_conv_7x7");
    let err = parse_err(&unknown_op);
    assert!(err.contains("arch.json") && err.contains("unknown op `dil_conv_7x7`"), "{err}");

    let bad_input = PAPER_JSON.replace("[3, \"sep_conv_3x3\"]", "[4, \"sep_conv_3x3\"]");
    let err = parse_err(&bad_input);
    assert!(err.contains("block 2, edge 1: input 4 is not a predecessor"), "{err}");

    let none_op = PAPER_JSON.replace("[1, \"sep_conv_3x3\"]", "[1, \"none\"]");
    assert!(parse_err(&none_op).contains("op `none`"));

    let bad_path = PAPER_JSON.replace("[0, 0, 0, 1, 2,", "[0, 0, 0, 2, 2,");
    let err = parse_err(&bad_path);
    assert!(err.contains("layer 3: moves from level 0 to level 2"), "{err}");

    let three_edges = PAPER_JSON.replace(
        "[[0, \"dil_conv_5x5\"], [1, \"sep_conv_3x3\"]]",
        "[[0, \"dil_conv_5x5\"], [1, \"sep_conv_3x3\"], [1, \"skip_connect\"]]",
    );
    assert!(parse_err(&three_edges).contains("arch.json"));

    assert!(parse_err(r#"{"path": [0]}"#).contains("missing field `cell`"));
    assert!(parse_err(r#"{"cell": [], "path": [0]}"#).contains("at least one block"));

    // Wrong number of blocks or layers for the network it is used with.
    let arch = Architecture::paper();
    let err = arch.check_shape(4, 12, "arch.json").unwrap_err();
    assert!(matches!(err, ArchitectureError::Cell { .. }));
    assert!(err.to_string().contains("has 5 blocks, the network expects 4"), "{err}");
    let err = arch.check_shape(5, 8, "arch.json").unwrap_err();
    assert!(err.to_string().contains("has 12 layers, the network expects 8"), "{err}");
    arch.check_shape(5, 12, "arch.json").unwrap();

    let missing = Architecture::load(std::path::Path::new("/nonexistent/arch.json")).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/arch.json"), "{missing}");
}
