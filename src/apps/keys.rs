//! Announcements and questions by keypad, shared by the phone menus
//! (retrieval, the audio-message recorder). A key pressed over an
//! announcement is kept to answer the next question, as callers who know
//! the menus expect.

use std::time::Duration;

use crate::call::{CallApi, HungUp};
use crate::prompts::Pcm;

/// Every key a caller can press.
pub(crate) const ALL_KEYS: &str = "0123456789*#";

/// Plays an announcement that any key may cut short; that key is kept in
/// `pending` to answer the next question. Nothing is played if the caller
/// is already ahead.
pub(crate) async fn say<C: CallApi>(
    call: &mut C,
    pending: &mut Option<char>,
    items: Vec<Pcm>,
) -> Result<(), HungUp> {
    if pending.is_none() {
        *pending = call.play_interruptible(items, ALL_KEYS).await?;
    }
    Ok(())
}

/// Plays a question; the first key pressed before or during it, or within
/// `timeout` after it (`None`: silence).
pub(crate) async fn ask<C: CallApi>(
    call: &mut C,
    pending: &mut Option<char>,
    items: Vec<Pcm>,
    timeout: Duration,
) -> Result<Option<char>, HungUp> {
    if let Some(k) = pending.take() {
        return Ok(Some(k));
    }
    if let Some(k) = call.play_interruptible(items, ALL_KEYS).await? {
        return Ok(Some(k));
    }
    call.collect_digit(timeout).await
}

/// The rest of a keyed entry whose first key was `first`: keys up to `#`
/// (not kept), a pause of `inter_digit` once something was typed, or
/// `limit` keys, whichever comes first.
pub(crate) async fn read_entry_from<C: CallApi>(
    call: &mut C,
    first: char,
    limit: usize,
    inter_digit: Duration,
) -> Result<String, HungUp> {
    let mut entry = String::new();
    let mut key = first;
    while key != '#' {
        entry.push(key);
        if entry.len() >= limit {
            break;
        }
        match call.collect_digit(inter_digit).await? {
            Some(k) => key = k,
            None => break,
        }
    }
    Ok(entry)
}
