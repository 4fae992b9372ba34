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
}
