//! CSAF 2.0 (OASIS): `document.tracking.{id,version,current_release_date,aliases}`,
//! `vulnerabilities[].{cve,ids,references}`, `document.references`, and the product tree's
//! `product_identification_helper.{purl,cpe}` wherever they occur.

use super::{
    escape_pointer_token, hint, push_aliases, push_identifier, trimmed, Extracted, MapError,
};
use crate::model::{pointer, Identifiers, Linkset};
use serde_json::Value;

pub(super) fn extract(doc: &Value) -> Result<Extracted, MapError> {
    let tracking = pointer(doc, "/document/tracking");
    let upstream_id = tracking
        .and_then(|t| t.get("id"))
        .and_then(trimmed)
        .ok_or(MapError::MissingUpstreamId("/document/tracking/id"))?;
    let mut identifiers = Identifiers::default();
    let mut linkset = Linkset::default();

    push_aliases(
        &mut identifiers,
        &mut linkset,
        array(pointer(doc, "/document/tracking/aliases")),
        "/document/tracking/aliases",
    );
    for (i, vuln) in array(doc.get("vulnerabilities")).iter().enumerate() {
        if let Some(cve) = vuln.get("cve") {
            if let Some(c) = trimmed(cve) {
                identifiers.cve.push(c);
            }
            hint(
                &mut linkset.aliases,
                &mut linkset.reconciled_from,
                cve,
                format!("/vulnerabilities/{i}/cve"),
            );
        }
        for (j, id) in array(vuln.get("ids")).iter().enumerate() {
            if let Some(text) = id.get("text") {
                if let Some(t) = trimmed(text) {
                    push_identifier(&mut identifiers, &t);
                }
                hint(
                    &mut linkset.aliases,
                    &mut linkset.reconciled_from,
                    text,
                    format!("/vulnerabilities/{i}/ids/{j}/text"),
                );
            }
        }
        for (j, r) in array(vuln.get("references")).iter().enumerate() {
            if let Some(url) = r.get("url") {
                let ptr = format!("/vulnerabilities/{i}/references/{j}/url");
                hint(
                    &mut linkset.references,
                    &mut linkset.reconciled_from,
                    url,
                    ptr,
                );
            }
        }
    }
    for (i, r) in array(pointer(doc, "/document/references"))
        .iter()
        .enumerate()
    {
        if let Some(url) = r.get("url") {
            hint(
                &mut linkset.references,
                &mut linkset.reconciled_from,
                url,
                format!("/document/references/{i}/url"),
            );
        }
    }
    if let Some(tree) = doc.get("product_tree") {
        let mut path = String::from("/product_tree");
        walk_product_tree(tree, &mut path, &mut linkset);
    }

    let default_vendor = pointer(doc, "/document/publisher/namespace")
        .and_then(Value::as_str)
        .map(host_of)
        .or_else(|| {
            pointer(doc, "/document/publisher/name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "csaf".to_owned())
        .to_ascii_lowercase();
    Ok(Extracted {
        document_version: tracking.and_then(|t| {
            t.get("version")
                .and_then(trimmed)
                .or_else(|| t.get("current_release_date").and_then(trimmed))
        }),
        spec_version: pointer(doc, "/document/csaf_version").and_then(trimmed),
        upstream_id,
        default_vendor,
        identifiers,
        linkset,
    })
}

/// Depth-first, in document order, over every `product_identification_helper` in the tree.
fn walk_product_tree(node: &Value, path: &mut String, linkset: &mut Linkset) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                let len = path.len();
                path.push('/');
                path.push_str(&escape_pointer_token(key));
                if key == "product_identification_helper" {
                    if let Some(purl) = value.get("purl") {
                        hint(
                            &mut linkset.purls,
                            &mut linkset.reconciled_from,
                            purl,
                            format!("{path}/purl"),
                        );
                    }
                    if let Some(cpe) = value.get("cpe") {
                        hint(
                            &mut linkset.cpes,
                            &mut linkset.reconciled_from,
                            cpe,
                            format!("{path}/cpe"),
                        );
                    }
                } else {
                    walk_product_tree(value, path, linkset);
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                walk_product_tree(item, path, linkset);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', ':'])
        .next()
        .unwrap_or(rest)
        .trim_start_matches("www.")
        .to_owned()
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}
