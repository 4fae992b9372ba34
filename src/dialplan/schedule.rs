//! Business hours: weekly opening ranges and holidays in a time zone.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// Weekday keys, Monday first (the index into [`Schedule::week`]).
pub const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A day that is closed whatever the weekly hours say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holiday {
    /// `2026-12-25`.
    Date(Date),
    /// `12-25`: every year.
    Yearly { month: i8, day: i8 },
}

impl Holiday {
    /// `YYYY-MM-DD` or `MM-DD`.
    pub fn parse(text: &str) -> Result<Holiday, String> {
        let bad =
            || format!("`{text}` is not a date, expected YYYY-MM-DD (or MM-DD for every year)");
        match text.len() {
            10 => text.parse::<Date>().map(Holiday::Date).map_err(|_| bad()),
            5 => {
                let (m, d) = text.split_once('-').ok_or_else(bad)?;
                let two = |s: &str| {
                    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| s.parse::<i8>().ok())
                        .flatten()
                };
                let (month, day) = (two(m).ok_or_else(bad)?, two(d).ok_or_else(bad)?);
                // 2024 is a leap year, so 02-29 is accepted.
                Date::new(2024, month, day).map_err(|_| bad())?;
                Ok(Holiday::Yearly { month, day })
            }
            _ => Err(bad()),
        }
    }

    pub fn contains(&self, date: Date) -> bool {
        match *self {
            Holiday::Date(d) => d == date,
            Holiday::Yearly { month, day } => date.month() == month && date.day() == day,
        }
    }
}

/// `HH:MM-HH:MM` as minutes since midnight, end exclusive; `24:00` is the
/// end of the day.
pub fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{text}` is not a time range, expected HH:MM-HH:MM like \"09:00-17:30\"");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let minutes = |s: &str| -> Option<u16> {
        let (h, m) = s.split_once(':')?;
        if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
    };
    let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
    if start >= end {
        return Err(format!("`{text}`: the range ends before it starts"));
    }
    Ok((start, end))
}

/// Where a schedule sends a call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleState {
    Open,
    Closed,
    Holiday,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    /// As written (`Europe/Brussels`).
    pub timezone_name: String,
    pub timezone: TimeZone,
    /// Open ranges in minutes since local midnight, Monday first.
    pub week: [Vec<(u16, u16)>; 7],
    pub holidays: Vec<Holiday>,
    pub open: String,
    pub closed: String,
    /// Where holidays go; `None` means `closed`.
    pub holiday: Option<String>,
}

fn weekday_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

impl Schedule {
    /// Open, closed, or a holiday, at this instant in the schedule's zone.
    pub fn state_at(&self, now: Timestamp) -> ScheduleState {
        let local = now.to_zoned(self.timezone.clone());
        let date = local.date();
        if self.holidays.iter().any(|h| h.contains(date)) {
            return ScheduleState::Holiday;
        }
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let open = self.week[weekday_index(date.weekday())]
            .iter()
            .any(|&(start, end)| start <= minute && minute < end);
        if open {
            ScheduleState::Open
        } else {
            ScheduleState::Closed
        }
    }

    /// The node a call goes to at this instant.
    pub fn target_at(&self, now: Timestamp) -> &str {
        match self.state_at(now) {
            ScheduleState::Open => &self.open,
            ScheduleState::Closed => &self.closed,
            ScheduleState::Holiday => self.holiday.as_deref().unwrap_or(&self.closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brussels_office() -> Schedule {
        let weekday = vec![(9 * 60, 12 * 60), (13 * 60, 17 * 60 + 30)];
        Schedule {
            timezone_name: "Europe/Brussels".into(),
            timezone: TimeZone::get("Europe/Brussels").unwrap(),
            week: [
                weekday.clone(),
                weekday.clone(),
                weekday.clone(),
                weekday.clone(),
                weekday,
                vec![],
                vec![],
            ],
            holidays: vec![
                Holiday::parse("2026-12-25").unwrap(),
                Holiday::parse("01-01").unwrap(),
            ],
            open: "open".into(),
            closed: "closed".into(),
            holiday: Some("holiday".into()),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekly_hours_in_local_time_across_dst() {
        let s = brussels_office();
        // Thursday 2026-03-26, CET (UTC+1): 16:00Z is 17:00 local, open.
        assert_eq!(s.state_at(at("2026-03-26T16:00:00Z")), ScheduleState::Open);
        // Thursday 2026-04-02, CEST (UTC+2) since 29 March: 16:00Z is
        // 18:00 local, closed. UTC or a fixed offset would say open.
        assert_eq!(
            s.state_at(at("2026-04-02T16:00:00Z")),
            ScheduleState::Closed
        );
        assert_eq!(s.state_at(at("2026-04-02T15:29:00Z")), ScheduleState::Open);
        assert_eq!(
            s.state_at(at("2026-04-02T15:30:00Z")),
            ScheduleState::Closed
        );
        // Lunch break and opening edge.
        assert_eq!(
            s.state_at(at("2026-04-02T10:30:00Z")),
            ScheduleState::Closed
        );
        assert_eq!(s.state_at(at("2026-04-02T07:00:00Z")), ScheduleState::Open);
        assert_eq!(
            s.state_at(at("2026-04-02T06:59:59Z")),
            ScheduleState::Closed
        );
        // Saturday.
        assert_eq!(
            s.state_at(at("2026-04-04T10:00:00Z")),
            ScheduleState::Closed
        );
    }

    #[test]
    fn holidays_use_the_local_date() {
        let s = brussels_office();
        // 23:30Z on the 24th is already the 25th in Brussels.
        assert_eq!(
            s.state_at(at("2026-12-24T22:59:00Z")),
            ScheduleState::Closed
        );
        assert_eq!(
            s.state_at(at("2026-12-24T23:30:00Z")),
            ScheduleState::Holiday
        );
        assert_eq!(s.target_at(at("2026-12-25T10:00:00Z")), "holiday");
        // The 25th of 2027 is not listed (a dated holiday is one day).
        assert_eq!(
            s.state_at(at("2027-12-24T23:30:00Z")),
            ScheduleState::Closed
        );
        // A yearly holiday on a Friday in 2027.
        assert_eq!(
            s.state_at(at("2027-01-01T10:00:00Z")),
            ScheduleState::Holiday
        );
        // Without a holiday target, holidays go to `closed`.
        let mut s = s;
        s.holiday = None;
        assert_eq!(s.target_at(at("2026-12-25T10:00:00Z")), "closed");
        assert_eq!(s.target_at(at("2026-12-23T10:00:00Z")), "open");
    }

    #[test]
    fn ranges_and_dates_parse_strictly() {
        assert_eq!(parse_range("09:00-17:30"), Ok((540, 1050)));
        assert_eq!(parse_range("00:00-24:00"), Ok((0, 1440)));
        for bad in [
            "9:00-17:30",
            "09:00",
            "09:00-24:01",
            "25:00-26:00",
            "12:00-09:00",
            "10:00-10:00",
            "0a:00-10:00",
        ] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Holiday::parse("2026-02-29").unwrap_err(),
            "`2026-02-29` is not a date, expected YYYY-MM-DD (or MM-DD for every year)"
        );
        assert_eq!(
            Holiday::parse("02-29"),
            Ok(Holiday::Yearly { month: 2, day: 29 })
        );
        for bad in ["13-01", "2026-1-1", "12/25", "", "1-225"] {
            assert!(Holiday::parse(bad).is_err(), "{bad}");
        }
    }
}
