//! Calendar dates in UTC, from Unix time and back, in one place: the log's timestamps, the admin
//! CLI's times and the doctor's certificate dates all use these (Howard Hinnant's
//! `civil_from_days` and `days_from_civil`, <https://howardhinnant.github.io/date_algorithms.html>).
//! No time-zone database: everything linkgate shows is UTC.

/// Year, month (1–12) and day (1–31) of a day counted from 1970-01-01.
pub fn date_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a date (negative before it); `month` 1–12, `day` 1–31.
pub fn days_from_date(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let mp = (month + 9) % 12;
    let day_of_year = (153 * mp + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds.
pub fn format_time(secs: u64) -> String {
    let (year, month, day) = date_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_the_calendar_for_every_day_from_1970_to_2200_both_ways() {
        // An independent count: walk the calendar a day at a time.
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..84_000u64 {
            assert_eq!(date_from_days(days), (year, month, day), "day {days}");
            assert_eq!(
                days_from_date(year as i64, month as i64, day as i64),
                days as i64,
                "{year}-{month}-{day}"
            );
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
        assert_eq!(days_from_date(1969, 12, 31), -1);
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_795_000_000), "2026-11-18 11:06:40 UTC");
    }
}
