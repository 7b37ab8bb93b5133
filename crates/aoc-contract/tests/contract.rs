//! The contract over real advisories: mapping, guard and hashing of OSV (RustSec, GitHub, Go) and
//! CSAF 2.0 documents copied into `testdata/`, and one document per ERR_AOC code.

use aoc_contract::guard::FORBIDDEN_TOP_LEVEL;
use aoc_contract::{content_hash, map_document, Guard, GuardOptions, MapContext, ViolationCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn testdata(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no samples in {}", root.display());
    files
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn ctx() -> MapContext {
    MapContext {
        tenant: "tenant-a".into(),
        vendor: None,
        connector_version: "0.1.0".into(),
        retrieved_at: "2026-11-26T00:00:00Z".into(),
        ingested_at: "2026-11-26T00:00:00Z".into(),
    }
}

fn mapped(path: &Path) -> Value {
    map_document(read(path), &ctx(), &mut Vec::new())
        .unwrap()
        .into_value()
}

fn codes(doc: &Value) -> Vec<ViolationCode> {
    Guard::new(GuardOptions::default())
        .check(doc)
        .into_iter()
        .map(|v| v.code)
        .collect()
}

#[test]
fn real_advisories_from_every_sample_map_and_pass_the_guard() {
    let mut guard = Guard::new(GuardOptions::default());
    for dir in ["osv-rustsec", "osv-other", "csaf"] {
        for path in testdata(dir) {
            let doc = mapped(&path);
            assert_eq!(guard.check(&doc), vec![], "{}", path.display());
            let raw = doc.pointer("/content/raw").unwrap();
            assert_eq!(
                raw,
                &read(&path),
                "content.raw is the upstream document untouched"
            );
            for ptr in doc["linkset"]["reconciled_from"].as_array().unwrap() {
                assert!(
                    raw.pointer(ptr.as_str().unwrap()).is_some(),
                    "{}: {ptr} must resolve",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn osv_mapping_of_a_rustsec_advisory() {
    let doc = mapped(&testdata("osv-rustsec")[0]); // RUSTSEC-2016-0001
    assert_eq!(doc["source"]["vendor"], "rustsec");
    assert_eq!(doc["upstream"]["upstream_id"], "RUSTSEC-2016-0001");
    assert_eq!(doc["upstream"]["document_version"], "2023-06-13T13:10:24Z");
    assert_eq!(
        doc["identifiers"],
        json!({"cve": ["CVE-2016-10931"], "ghsa": ["GHSA-34p9-f4q3-c4r7"], "aliases": ["CVE-2016-10931", "GHSA-34p9-f4q3-c4r7"]})
    );
    assert_eq!(doc["linkset"]["purls"], json!(["pkg:cargo/openssl"]));
    assert_eq!(doc["linkset"]["references"].as_array().unwrap().len(), 3);
    assert_eq!(doc["content"]["format"], "OSV");
    assert_eq!(doc["supersedes"], Value::Null);
}

#[test]
fn osv_from_other_databases_maps_without_special_cases() {
    let files = testdata("osv-other");
    let ghsa = mapped(&files[0]);
    assert_eq!(ghsa["source"]["vendor"], "ghsa");
    assert_eq!(ghsa["identifiers"]["ghsa"], json!(["GHSA-22m9-m3ww-53h3"]));
    assert_eq!(ghsa["identifiers"]["cve"], json!(["CVE-2023-22487"]));
    assert_eq!(ghsa["content"]["spec_version"], "1.3.0");
    assert_eq!(
        ghsa["linkset"]["purls"],
        json!([]),
        "the advisory gives no purl; none is invented"
    );
    let go = mapped(&files[1]);
    assert_eq!(go["source"]["vendor"], "go");
    assert_eq!(go["identifiers"]["ghsa"], json!(["GHSA-ppp9-7jff-5vj2"]));
    assert_eq!(
        go["upstream"]["document_version"], "0001-01-01T00:00:00Z",
        "as the upstream gave it"
    );
}

#[test]
fn csaf_mapping_reads_tracking_vulnerabilities_and_product_tree() {
    let path = testdata("csaf")
        .into_iter()
        .find(|p| p.ends_with("rhsa-2021_5217.json"))
        .unwrap();
    let doc = mapped(&path);
    let raw = read(&path);
    assert_eq!(doc["content"]["format"], "CSAF");
    assert_eq!(doc["content"]["spec_version"], "2.0");
    assert_eq!(doc["source"]["vendor"], "redhat.com");
    assert_eq!(
        doc["upstream"]["upstream_id"],
        raw["document"]["tracking"]["id"]
    );
    assert_eq!(
        doc["upstream"]["document_version"],
        raw["document"]["tracking"]["version"]
    );
    let cves: Vec<&Value> = raw["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["cve"])
        .collect();
    assert_eq!(
        doc["identifiers"]["cve"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        cves
    );
    assert_eq!(
        doc["linkset"]["cpes"],
        json!([]),
        "this advisory's product tree names no CPE"
    );

    let bsi = mapped(
        &testdata("csaf")
            .into_iter()
            .find(|p| p.ends_with("bsi-2022-0001.json"))
            .unwrap(),
    );
    let cpes = bsi["linkset"]["cpes"].as_array().unwrap();
    assert!(!cpes.is_empty(), "BSI product tree carries CPEs");
    let raw = &bsi["content"]["raw"];
    for (hint, ptr) in cpes.iter().zip(
        bsi["linkset"]["reconciled_from"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p.as_str().unwrap().ends_with("/cpe")),
    ) {
        assert_eq!(raw.pointer(ptr.as_str().unwrap()).unwrap(), hint);
    }
}

#[test]
fn content_hash_is_stable_across_key_order_and_whitespace() {
    for path in testdata("osv-rustsec").into_iter().chain(testdata("csaf")) {
        let doc = read(&path);
        let compact = serde_json::to_string(&doc).unwrap();
        let reversed = reverse_keys(&doc);
        let pretty = serde_json::to_string_pretty(&reversed).unwrap();
        let h = content_hash(&doc);
        assert_eq!(h, content_hash(&serde_json::from_str(&compact).unwrap()));
        assert_eq!(
            h,
            content_hash(&serde_json::from_str(&pretty).unwrap()),
            "{}",
            path.display()
        );
        assert_eq!(h, mapped(&path)["upstream"]["content_hash"]);
    }
    // Pinned value, cross-checked with Python's `json.dumps(doc, sort_keys=True, separators=(",", ":"),
    // ensure_ascii=False)` (equal to JCS for documents without floats): a change to
    // canonicalisation must be deliberate, since it changes every stored id.
    let first = read(&testdata("osv-rustsec")[0]);
    assert_eq!(
        content_hash(&first),
        "sha256:d28109bf29668fd2e99bba45ac75069f2af82c6a3a41ad6d488d430b2d5fa339"
    );
}

fn reverse_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reverse_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(reverse_keys).collect()),
        other => other.clone(),
    }
}

fn base() -> Value {
    mapped(&testdata("osv-rustsec")[0])
}

#[test]
fn err_aoc_001_forbidden_derived_fields_at_top_level() {
    for key in FORBIDDEN_TOP_LEVEL
        .iter()
        .copied()
        .chain(["effective_severity"])
    {
        let mut doc = base();
        doc[key] = json!("HIGH");
        assert_eq!(codes(&doc), [ViolationCode::Forbidden], "{key}");
    }
}

#[test]
fn forbidden_names_inside_raw_are_upstream_data() {
    let doc = base();
    assert!(
        doc.pointer("/content/raw/severity").is_some(),
        "RustSec advisories carry OSV `severity`"
    );
    assert_eq!(codes(&doc), []);
}

#[test]
fn err_aoc_002_merge_of_several_sources() {
    let mut doc = base();
    let source = doc["source"].clone();
    doc["source"] = json!([source.clone(), {"vendor": "ghsa", "connector": "x", "version": "1"}]);
    assert_eq!(codes(&doc), [ViolationCode::Merge]);
}

#[test]
fn err_aoc_003_self_or_foreign_supersedes() {
    let mut doc = base();
    doc["supersedes"] = doc["_id"].clone();
    assert_eq!(codes(&doc), [ViolationCode::Idempotency]);
    doc["supersedes"] = json!("advisory_raw:ghsa:GHSA-1:0000000000000000");
    assert_eq!(codes(&doc), [ViolationCode::Idempotency]);
}

#[test]
fn err_aoc_004_missing_provenance() {
    let mut doc = base();
    doc.as_object_mut().unwrap().remove("tenant");
    assert_eq!(codes(&doc), [ViolationCode::MissingProvenance]);
    let mut doc = base();
    doc["upstream"]
        .as_object_mut()
        .unwrap()
        .remove("retrieved_at");
    assert_eq!(codes(&doc), [ViolationCode::MissingProvenance]);
    let doc = base();
    let strict = Guard::new(GuardOptions {
        require_signature: true,
        ..GuardOptions::default()
    })
    .check(&doc);
    assert!(
        strict
            .iter()
            .all(|v| v.code == ViolationCode::MissingProvenance)
            && strict.len() == 2,
        "{strict:?}"
    );
}

#[test]
fn err_aoc_005_content_changed_after_hashing() {
    let mut doc = base();
    doc["content"]["raw"]["summary"] = json!("edited after the fact");
    let violations = Guard::new(GuardOptions::default()).check(&doc);
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].code, ViolationCode::HashMismatch);
    assert_eq!(violations[0].path, "/upstream/content_hash");
    // A freshly mapped document skips only the hash its mapper just computed.
    let mut guard = Guard::new(GuardOptions::default());
    assert!(guard.check_fresh(&doc).is_empty());
    doc["severity"] = json!("high");
    assert_eq!(guard.check_fresh(&doc)[0].code, ViolationCode::Forbidden);
    assert_eq!(
        guard.check(&doc).len(),
        2,
        "check still recomputes the hash"
    );
}

#[test]
fn err_aoc_006_derived_finding() {
    let mut doc = base();
    doc["effective_finding_status"] = json!("affected");
    assert_eq!(codes(&doc), [ViolationCode::DerivedFinding]);
}

#[test]
fn err_aoc_007_unknown_top_level_field() {
    let mut doc = base();
    doc["notes"] = json!("hello");
    assert_eq!(codes(&doc), [ViolationCode::UnknownField]);
}

#[test]
fn all_violations_are_reported_in_a_stable_order() {
    let mut doc = base();
    doc["zzz"] = json!(1);
    doc["cvss"] = json!(9.8);
    doc["effective_finding_x"] = json!(true);
    doc.as_object_mut().unwrap().remove("tenant");
    doc["content"]["raw"]["id"] = json!("changed");
    let v = Guard::new(GuardOptions::default()).check(&doc);
    let got: Vec<(&str, &str)> = v
        .iter()
        .map(|v| (v.code.as_str(), v.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("ERR_AOC_001", "/cvss"),
            ("ERR_AOC_004", "/tenant"),
            ("ERR_AOC_005", "/upstream/content_hash"),
            ("ERR_AOC_006", "/effective_finding_x"),
            ("ERR_AOC_007", "/zzz")
        ]
    );
}
