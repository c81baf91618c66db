//! Calendar dates in UTC, for listings and catalog partitions, without a time zone
//! database.

/// The UTC date `(year, month, day)` of `secs` seconds since the epoch (Howard
/// Hinnant's `civil_from_days`), and the seconds into that day.
pub fn date(secs: i64) -> ((i64, i64, i64), i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    ((y, m, d), rem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), ((1970, 1, 1), 0));
        assert_eq!(date(1_700_000_000), ((2023, 11, 14), 80_000));
        assert_eq!(date(-1), ((1969, 12, 31), 86_399));
        assert_eq!(date(951_782_400), ((2000, 2, 29), 0));
    }
}
