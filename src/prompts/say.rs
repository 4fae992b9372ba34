//! Which prompts say a number or a message count in each language.
//!
//! Pure functions from (language, value) to prompt names, so the grammar is
//! testable without audio. The names are those of `prompts/catalogue.toml`.
//! Unknown languages use the English rules (their prompts fall back to
//! English too).

const DIGITS: [&str; 10] = [
    "digit-0", "digit-1", "digit-2", "digit-3", "digit-4", "digit-5", "digit-6", "digit-7",
    "digit-8", "digit-9",
];

/// 10..=29: single words in every language (Spanish needs 21-29 as words).
const TEENS_AND_TWENTIES: [&str; 20] = [
    "num-10", "num-11", "num-12", "num-13", "num-14", "num-15", "num-16", "num-17", "num-18",
    "num-19", "num-20", "num-21", "num-22", "num-23", "num-24", "num-25", "num-26", "num-27",
    "num-28", "num-29",
];

/// Indexed by tens digit; 0-2 unused (covered above).
const TENS: [&str; 10] = [
    "", "", "", "num-30", "num-40", "num-50", "num-60", "num-70", "num-80", "num-90",
];

const AND: &str = "vm-and";

/// Whether a count is of new or old messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAge {
    New,
    Old,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Fr,
    Es,
    De,
}

fn lang_of(lang: &str) -> Lang {
    // "fr-CA" follows French rules.
    match lang.split(['-', '_']).next().unwrap_or("") {
        "fr" => Lang::Fr,
        "es" => Lang::Es,
        "de" => Lang::De,
        _ => Lang::En,
    }
}

/// Prompt names saying each digit of `digits`; other characters are skipped.
pub fn digit_names(digits: &str) -> Vec<&'static str> {
    digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| DIGITS[usize::from(b - b'0')])
        .collect()
}

/// Prompt names saying `n` as a number ("forty-two"). Values above 99 are
/// said digit by digit: counts that large are rare in a mailbox.
pub fn number_names(lang: &str, n: u32) -> Vec<&'static str> {
    number(lang_of(lang), n, false)
}

/// `counting`: the number stands before the word for "message(s)", where
/// "one" agrees with the noun (un, eine, veintiún).
fn number(lang: Lang, n: u32, counting: bool) -> Vec<&'static str> {
    match n {
        1 if counting => vec!["num-1-count"],
        0..=9 => vec![DIGITS[n as usize]],
        21 if counting => vec!["num-21-count"],
        10..=29 => vec![TEENS_AND_TWENTIES[(n - 10) as usize]],
        30..=99 => {
            let (t, u) = ((n / 10) as usize, (n % 10) as usize);
            let unit_one = if counting { "num-1-count" } else { DIGITS[1] };
            match (lang, u) {
                (_, 0) => vec![TENS[t]],
                (Lang::En, _) => vec![TENS[t], DIGITS[u]],
                (Lang::Es, 1) => vec![TENS[t], AND, unit_one],
                (Lang::Es, _) => vec![TENS[t], AND, DIGITS[u]],
                // einunddreißig: unit, "und", tens; "ein" in compounds.
                (Lang::De, 1) => vec!["num-1-compound", AND, TENS[t]],
                (Lang::De, _) => vec![DIGITS[u], AND, TENS[t]],
                (Lang::Fr, _) => french_30_99(t, u, unit_one),
            }
        }
        _ => digit_names(&n.to_string()),
    }
}

/// French 30-99: "et un" for 31-61 and 71, 70-79 and 90-99 as 60/80 plus
/// 10-19, no "et" in the 80s and 90s.
fn french_30_99(t: usize, u: usize, unit_one: &'static str) -> Vec<&'static str> {
    match t {
        7 | 9 => {
            let base = if t == 7 { TENS[6] } else { TENS[8] };
            let teen = TEENS_AND_TWENTIES[u]; // 10 + u
            if t == 7 && u == 1 {
                vec![base, AND, teen]
            } else {
                vec![base, teen]
            }
        }
        8 => vec![TENS[8], if u == 1 { unit_one } else { DIGITS[u] }],
        _ if u == 1 => vec![TENS[t], AND, unit_one],
        _ => vec![TENS[t], DIGITS[u]],
    }
}

/// "two new messages", "une alte Nachricht"... in the language's word order.
/// `age` adds "new"/"old".
pub fn message_count_names(lang: &str, n: u32, age: Option<MessageAge>) -> Vec<&'static str> {
    let lang = lang_of(lang);
    // French treats 0 and 1 as singular; the others only 1.
    let plural = match lang {
        Lang::Fr => n >= 2,
        _ => n != 1,
    };
    let noun = if plural { "vm-messages" } else { "vm-message" };
    let adj = age.map(|a| match (a, plural) {
        (MessageAge::New, false) => "vm-new",
        (MessageAge::New, true) => "vm-new-pl",
        (MessageAge::Old, false) => "vm-old",
        (MessageAge::Old, true) => "vm-old-pl",
    });
    let mut out = number(lang, n, true);
    match lang {
        // Spanish puts the adjective after the noun: dos mensajes nuevos.
        Lang::Es => {
            out.push(noun);
            out.extend(adj);
        }
        _ => {
            out.extend(adj);
            out.push(noun);
        }
    }
    out
}

/// "You have two new messages and one old message", or "You have no
/// messages" when both counts are zero.
pub fn you_have_names(lang: &str, new: u32, old: u32) -> Vec<&'static str> {
    if new == 0 && old == 0 {
        return vec!["vm-no-messages"];
    }
    let mut out = vec!["vm-youhave"];
    if new > 0 {
        out.extend(message_count_names(lang, new, Some(MessageAge::New)));
    }
    if new > 0 && old > 0 {
        out.push(AND);
    }
    if old > 0 {
        out.extend(message_count_names(lang, old, Some(MessageAge::Old)));
    }
    out
}

// --- Dates, times and durations ---------------------------------------------

/// Monday first, as `jiff::civil::Weekday::to_monday_one_offset`.
const WEEKDAYS: [&str; 7] = [
    "day-1", "day-2", "day-3", "day-4", "day-5", "day-6", "day-7",
];

const MONTHS: [&str; 12] = [
    "month-1", "month-2", "month-3", "month-4", "month-5", "month-6", "month-7", "month-8",
    "month-9", "month-10", "month-11", "month-12",
];

/// The day of the month as said in a date (ordinal in en/de, cardinal in
/// fr/es with "premier" for the 1st in French).
const DATE_DAYS: [&str; 31] = [
    "date-day-1",
    "date-day-2",
    "date-day-3",
    "date-day-4",
    "date-day-5",
    "date-day-6",
    "date-day-7",
    "date-day-8",
    "date-day-9",
    "date-day-10",
    "date-day-11",
    "date-day-12",
    "date-day-13",
    "date-day-14",
    "date-day-15",
    "date-day-16",
    "date-day-17",
    "date-day-18",
    "date-day-19",
    "date-day-20",
    "date-day-21",
    "date-day-22",
    "date-day-23",
    "date-day-24",
    "date-day-25",
    "date-day-26",
    "date-day-27",
    "date-day-28",
    "date-day-29",
    "date-day-30",
    "date-day-31",
];

/// The hour with its word: "quatorze heures", "la una", "ein Uhr"; in
/// English the 12-hour number ("two"), a.m./p.m. coming after the minutes.
const HOURS: [&str; 24] = [
    "hour-0", "hour-1", "hour-2", "hour-3", "hour-4", "hour-5", "hour-6", "hour-7", "hour-8",
    "hour-9", "hour-10", "hour-11", "hour-12", "hour-13", "hour-14", "hour-15", "hour-16",
    "hour-17", "hour-18", "hour-19", "hour-20", "hour-21", "hour-22", "hour-23",
];

fn weekday_name(date: jiff::civil::Date) -> &'static str {
    WEEKDAYS[(date.weekday().to_monday_one_offset() - 1) as usize]
}

fn month_name(date: jiff::civil::Date) -> &'static str {
    MONTHS[(date.month() - 1) as usize]
}

fn date_day_name(date: jiff::civil::Date) -> &'static str {
    DATE_DAYS[(date.day() - 1) as usize]
}

/// A count before a feminine noun (une seconde, vingt et une minutes): the
/// counting form with French "un" made "une". Other languages' counting
/// forms already agree (un segundo, eine Minute).
fn count_feminine(lang: Lang, n: u32) -> Vec<&'static str> {
    let names = number(lang, n, true);
    if lang != Lang::Fr {
        return names;
    }
    names
        .into_iter()
        .flat_map(|name| match name {
            "num-1-count" => vec!["num-1-fem"],
            "num-21-count" => vec!["num-20", AND, "num-1-fem"],
            other => vec![other],
        })
        .collect()
}

/// The minutes of a time, after the hour: nothing on the hour; English
/// "oh five"; French feminine (quatorze heures une); Spanish "y cuarto"
/// style with "y" (las dos y cinco).
fn minutes_names(lang: Lang, minute: u32) -> Vec<&'static str> {
    if minute == 0 {
        return Vec::new();
    }
    match lang {
        Lang::En if minute < 10 => vec!["time-oh", DIGITS[minute as usize]],
        Lang::Fr => count_feminine(lang, minute),
        Lang::Es => {
            let mut out = vec![AND];
            out.extend(number(lang, minute, false));
            out
        }
        _ => number(lang, minute, false),
    }
}

/// A date and time in each language's order, without a lead-in:
/// en "Monday March third at two oh five P M",
/// fr "lundi trois mars à quatorze heures cinq",
/// es "lunes tres de marzo a las catorce y cinco",
/// de "Montag dem dritten März um vierzehn Uhr fünf".
pub fn date_time_names(lang: &str, at: jiff::civil::DateTime) -> Vec<&'static str> {
    let lang = lang_of(lang);
    let date = at.date();
    let hour = at.hour() as usize;
    let minute = at.minute() as u32;
    let mut out = vec![weekday_name(date)];
    match lang {
        Lang::En => out.extend([month_name(date), date_day_name(date)]),
        Lang::Fr => out.extend([date_day_name(date), month_name(date)]),
        Lang::Es => out.extend([date_day_name(date), "time-of", month_name(date)]),
        Lang::De => out.extend(["date-article", date_day_name(date), month_name(date)]),
    }
    out.push("time-at");
    out.push(HOURS[hour]);
    out.extend(minutes_names(lang, minute));
    if lang == Lang::En {
        out.push(if hour < 12 { "time-am" } else { "time-pm" });
    }
    out
}

/// "It stays active until March third" / "jusqu'au trois mars" / "hasta
/// el tres de marzo" / "bis zum dritten März": `last_day` is the last day
/// on which something is still in force.
pub fn until_names(lang: &str, last_day: jiff::civil::Date) -> Vec<&'static str> {
    let mut out = vec!["vm-temp-until"];
    match lang_of(lang) {
        Lang::En => out.extend([month_name(last_day), date_day_name(last_day)]),
        Lang::Fr | Lang::De => out.extend([date_day_name(last_day), month_name(last_day)]),
        Lang::Es => out.extend([date_day_name(last_day), "time-of", month_name(last_day)]),
    }
    out
}

/// A duration as a count of seconds under a minute, else of minutes
/// (rounded), with the unit agreeing: "one second", "deux minutes",
/// "veintiún segundos", "eine Minute".
pub fn duration_names(lang: &str, seconds: f64) -> Vec<&'static str> {
    let lang = lang_of(lang);
    let secs = if seconds.is_finite() && seconds > 0.0 {
        seconds.round().min(f64::from(u32::MAX)) as u32
    } else {
        0
    };
    let (n, singular, plural) = if secs < 60 {
        (secs.max(1), "time-second", "time-seconds")
    } else {
        (secs.saturating_add(30) / 60, "time-minute", "time-minutes")
    };
    let is_plural = match lang {
        Lang::Fr => n >= 2,
        _ => n != 1,
    };
    let mut out = count_feminine(lang, n);
    out.push(if is_plural { plural } else { singular });
    out
}

/// The envelope of a message: "Received <date and time>", "From 3 2 2 5
/// ..." (or "from an unknown number" when the caller id has no digits),
/// "Length <duration>". `received` is already in the box's time zone.
pub fn envelope_names(
    lang: &str,
    received: jiff::civil::DateTime,
    caller_number: &str,
    duration_seconds: f64,
) -> Vec<&'static str> {
    let mut out = vec!["vm-received"];
    out.extend(date_time_names(lang, received));
    let digits = digit_names(caller_number);
    if digits.is_empty() {
        out.push("vm-unknown-caller");
    } else {
        out.push("vm-from");
        out.extend(digits);
    }
    out.push("vm-duration");
    out.extend(duration_names(lang, duration_seconds));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_skip_non_digits() {
        assert_eq!(
            digit_names("10*0#1a"),
            ["digit-1", "digit-0", "digit-0", "digit-1"]
        );
        assert!(digit_names("").is_empty());
    }

    #[test]
    fn english_numbers() {
        assert_eq!(number_names("en", 7), ["digit-7"]);
        assert_eq!(number_names("en", 13), ["num-13"]);
        assert_eq!(number_names("en", 40), ["num-40"]);
        assert_eq!(number_names("en", 42), ["num-40", "digit-2"]);
        assert_eq!(number_names("en", 105), ["digit-1", "digit-0", "digit-5"]);
        // Unknown languages use English rules.
        assert_eq!(number_names("it", 42), ["num-40", "digit-2"]);
    }

    #[test]
    fn french_numbers() {
        assert_eq!(number_names("fr", 31), ["num-30", "vm-and", "digit-1"]);
        assert_eq!(number_names("fr", 45), ["num-40", "digit-5"]);
        assert_eq!(number_names("fr", 70), ["num-70"]);
        assert_eq!(number_names("fr", 71), ["num-60", "vm-and", "num-11"]);
        assert_eq!(number_names("fr", 77), ["num-60", "num-17"]);
        assert_eq!(number_names("fr", 80), ["num-80"]);
        assert_eq!(number_names("fr", 81), ["num-80", "digit-1"]);
        assert_eq!(number_names("fr", 91), ["num-80", "num-11"]);
        assert_eq!(number_names("fr", 99), ["num-80", "num-19"]);
        assert_eq!(number_names("fr-CA", 71), ["num-60", "vm-and", "num-11"]);
    }

    #[test]
    fn spanish_and_german_numbers() {
        assert_eq!(number_names("es", 21), ["num-21"]);
        assert_eq!(number_names("es", 35), ["num-30", "vm-and", "digit-5"]);
        assert_eq!(number_names("de", 35), ["digit-5", "vm-and", "num-30"]);
        assert_eq!(
            number_names("de", 31),
            ["num-1-compound", "vm-and", "num-30"]
        );
    }

    #[test]
    fn counts_agree_with_the_noun() {
        assert_eq!(
            message_count_names("en", 1, Some(MessageAge::New)),
            ["num-1-count", "vm-new", "vm-message"]
        );
        assert_eq!(
            message_count_names("fr", 2, Some(MessageAge::New)),
            ["digit-2", "vm-new-pl", "vm-messages"]
        );
        assert_eq!(
            message_count_names("es", 2, Some(MessageAge::Old)),
            ["digit-2", "vm-messages", "vm-old-pl"]
        );
        assert_eq!(
            message_count_names("es", 21, None),
            ["num-21-count", "vm-messages"]
        );
        assert_eq!(
            message_count_names("es", 31, None),
            ["num-30", "vm-and", "num-1-count", "vm-messages"]
        );
        assert_eq!(
            message_count_names("de", 1, Some(MessageAge::New)),
            ["num-1-count", "vm-new", "vm-message"]
        );
        assert_eq!(
            message_count_names("de", 21, None),
            ["num-21-count", "vm-messages"]
        );
        // "zéro message" is singular in French, plural in English.
        assert_eq!(
            message_count_names("fr", 0, None),
            ["digit-0", "vm-message"]
        );
        assert_eq!(
            message_count_names("en", 0, None),
            ["digit-0", "vm-messages"]
        );
    }

    #[test]
    fn you_have_sentences() {
        assert_eq!(you_have_names("fr", 0, 0), ["vm-no-messages"]);
        assert_eq!(
            you_have_names("en", 2, 1),
            [
                "vm-youhave",
                "digit-2",
                "vm-new-pl",
                "vm-messages",
                "vm-and",
                "num-1-count",
                "vm-old",
                "vm-message"
            ]
        );
        assert_eq!(
            you_have_names("de", 0, 3),
            ["vm-youhave", "digit-3", "vm-old-pl", "vm-messages"]
        );
    }

    fn dt(s: &str) -> jiff::civil::DateTime {
        s.parse().unwrap()
    }

    #[test]
    fn date_and_time_in_each_language() {
        // Tuesday 3 March 2026, 14:05.
        let at = dt("2026-03-03T14:05");
        assert_eq!(
            date_time_names("en", at),
            [
                "day-2",
                "month-3",
                "date-day-3",
                "time-at",
                "hour-14",
                "time-oh",
                "digit-5",
                "time-pm"
            ]
        );
        assert_eq!(
            date_time_names("fr", at),
            [
                "day-2",
                "date-day-3",
                "month-3",
                "time-at",
                "hour-14",
                "digit-5"
            ]
        );
        assert_eq!(
            date_time_names("es", at),
            [
                "day-2",
                "date-day-3",
                "time-of",
                "month-3",
                "time-at",
                "hour-14",
                "vm-and",
                "digit-5"
            ]
        );
        assert_eq!(
            date_time_names("de-AT", at),
            [
                "day-2",
                "date-article",
                "date-day-3",
                "month-3",
                "time-at",
                "hour-14",
                "digit-5"
            ]
        );
        // On the hour nothing follows the hour (but English a.m./p.m.).
        let morning = dt("2026-11-01T09:00");
        assert_eq!(
            date_time_names("en", morning),
            [
                "day-7",
                "month-11",
                "date-day-1",
                "time-at",
                "hour-9",
                "time-am"
            ]
        );
        assert_eq!(
            date_time_names("fr", morning),
            ["day-7", "date-day-1", "month-11", "time-at", "hour-9"]
        );
    }

    #[test]
    fn minutes_agree_and_use_each_languages_numbers() {
        let at = |m: i8| jiff::civil::date(2026, 1, 5).at(21, m, 0, 0);
        assert_eq!(
            date_time_names("en", at(42))[5..],
            ["num-40", "digit-2", "time-pm"]
        );
        assert_eq!(date_time_names("en", at(15))[5..], ["num-15", "time-pm"]);
        // Minutes are feminine in French: "vingt et une heures une".
        assert_eq!(date_time_names("fr", at(1))[5..], ["num-1-fem"]);
        assert_eq!(
            date_time_names("fr", at(21))[5..],
            ["num-20", "vm-and", "num-1-fem"]
        );
        assert_eq!(
            date_time_names("fr", at(31))[5..],
            ["num-30", "vm-and", "num-1-fem"]
        );
        assert_eq!(
            date_time_names("es", at(31))[6..],
            ["vm-and", "num-30", "vm-and", "digit-1"]
        );
        assert_eq!(
            date_time_names("de", at(31))[6..],
            ["num-1-compound", "vm-and", "num-30"]
        );
    }

    #[test]
    fn until_a_day() {
        let d = jiff::civil::date(2026, 12, 24);
        assert_eq!(
            until_names("en", d),
            ["vm-temp-until", "month-12", "date-day-24"]
        );
        assert_eq!(
            until_names("fr", d),
            ["vm-temp-until", "date-day-24", "month-12"]
        );
        assert_eq!(
            until_names("es", d),
            ["vm-temp-until", "date-day-24", "time-of", "month-12"]
        );
        assert_eq!(
            until_names("de", d),
            ["vm-temp-until", "date-day-24", "month-12"]
        );
    }

    #[test]
    fn durations_agree_in_number_and_gender() {
        assert_eq!(duration_names("en", 0.4), ["num-1-count", "time-second"]);
        assert_eq!(duration_names("en", 12.4), ["num-12", "time-seconds"]);
        assert_eq!(duration_names("fr", 1.0), ["num-1-fem", "time-second"]);
        assert_eq!(
            duration_names("fr", 21.0),
            ["num-20", "vm-and", "num-1-fem", "time-seconds"]
        );
        assert_eq!(duration_names("es", 21.0), ["num-21-count", "time-seconds"]);
        assert_eq!(duration_names("de", 1.2), ["num-1-count", "time-second"]);
        // A minute and more: rounded minutes.
        assert_eq!(duration_names("en", 59.6), ["num-1-count", "time-minute"]);
        assert_eq!(duration_names("en", 150.0), ["digit-3", "time-minutes"]);
        assert_eq!(duration_names("de", 89.0), ["num-1-count", "time-minute"]);
        assert_eq!(
            duration_names("en", f64::NAN),
            ["num-1-count", "time-second"]
        );
    }

    #[test]
    fn envelope_says_date_caller_and_length() {
        let at = dt("2026-03-03T14:05");
        let names = envelope_names("en", at, "+32 2 555", 3.0);
        assert_eq!(names[0], "vm-received");
        let from = names.iter().position(|n| *n == "vm-from").unwrap();
        assert_eq!(
            names[from + 1..from + 5],
            ["digit-3", "digit-2", "digit-2", "digit-5"]
        );
        assert_eq!(
            names[names.len() - 3..],
            ["vm-duration", "digit-3", "time-seconds"]
        );
        let anon = envelope_names("fr", at, "anonymous", 3.0);
        assert!(anon.contains(&"vm-unknown-caller") && !anon.contains(&"vm-from"));
    }

    #[test]
    fn date_names_are_all_in_the_catalogue() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/prompts/catalogue.toml"
        ))
        .unwrap();
        let cat: toml::Table = text.parse().unwrap();
        let prompts = cat["prompts"].as_table().unwrap();
        let mut day = jiff::civil::date(2026, 1, 1).at(0, 0, 0, 0);
        for lang in ["en", "fr", "es", "de"] {
            for i in 0..400 {
                // Every day of a year and every minute of a day across it.
                let at = day
                    .checked_add(jiff::Span::new().days(i).minutes(i * 37 % 1440))
                    .unwrap();
                let mut names = envelope_names(lang, at, "0123456789", f64::from(i as u32));
                names.extend(until_names(lang, at.date()));
                names.extend(duration_names(lang, f64::from(i as u32) * 9.0));
                for n in names {
                    assert!(prompts.contains_key(n), "{lang}: {n} not in the catalogue");
                }
            }
            day = day.checked_add(jiff::Span::new().hours(1)).unwrap();
        }
    }
}
