//! OSV schema 1.x (<https://ossf.github.io/osv-schema/>): `id`, `modified`, `aliases`,
//! `affected[].package.purl`, `references[].url`.

use super::{hint, push_aliases, push_identifier, trimmed, Extracted, MapError};
use crate::model::{pointer, Identifiers, Linkset};
use serde_json::Value;

pub(super) fn extract(doc: &Value) -> Result<Extracted, MapError> {
    let upstream_id = doc
        .get("id")
        .and_then(trimmed)
        .ok_or(MapError::MissingUpstreamId("/id"))?;
    let mut identifiers = Identifiers::default();
    let mut linkset = Linkset::default();
    push_identifier(&mut identifiers, &upstream_id);
    push_aliases(
        &mut identifiers,
        &mut linkset,
        array(doc, "aliases"),
        "/aliases",
    );
    for (i, affected) in array(doc, "affected").iter().enumerate() {
        if let Some(purl) = pointer(affected, "/package/purl") {
            hint(
                &mut linkset.purls,
                &mut linkset.reconciled_from,
                purl,
                format!("/affected/{i}/package/purl"),
            );
        }
        // Some OSV databases (e.g. the Debian and Alpine exports) carry CPEs in database_specific.
        if let Some(cpe) = pointer(affected, "/database_specific/cpe") {
            hint(
                &mut linkset.cpes,
                &mut linkset.reconciled_from,
                cpe,
                format!("/affected/{i}/database_specific/cpe"),
            );
        }
    }
    for (i, reference) in array(doc, "references").iter().enumerate() {
        if let Some(url) = reference.get("url") {
            hint(
                &mut linkset.references,
                &mut linkset.reconciled_from,
                url,
                format!("/references/{i}/url"),
            );
        }
    }
    let default_vendor = super::vendor_from_id(&upstream_id);
    Ok(Extracted {
        document_version: doc.get("modified").and_then(trimmed),
        spec_version: doc.get("schema_version").and_then(trimmed),
        upstream_id,
        default_vendor,
        identifiers,
        linkset,
    })
}

fn array<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    doc.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}
