//! The run clock: one `SOURCE_DATE_EPOCH` sets every timestamp a run writes (docs/ARCHITECTURE.md §6).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Seconds since the epoch from `SOURCE_DATE_EPOCH`, or the wall clock when it is unset.
pub fn run_epoch() -> Result<i64, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH={v:?} is not an integer number of seconds")),
        Err(_) => Ok(OffsetDateTime::now_utc().unix_timestamp()),
    }
}

/// RFC 3339 UTC with second precision, e.g. `2026-11-26T16:00:00Z`.
pub fn rfc3339(epoch: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(epoch).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339)
        .expect("RFC 3339 formatting of a valid timestamp")
}

/// Parses RFC 3339 into epoch seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
