//! Applications: async code over [`crate::call::Call`] that decides what a
//! caller hears. Today: voicemail deposit. Dial plans route to these.

pub mod deposit;
pub mod pin;
pub mod retrieval;

use std::sync::Arc;

use crate::call::Call;
use crate::server::AppContext;

/// What an incoming call was routed to.
#[derive(Debug, Clone)]
pub enum Route {
    /// Leave a message in this mailbox.
    Deposit { mailbox: String },
}

/// Decide what a dialed number reaches; `None` means 404.
pub fn route(ctx: &AppContext, called: &str) -> Option<Route> {
    ctx.config
        .mailbox(called)
        .map(|m| Route::Deposit { mailbox: m.number.clone() })
}

/// Run the routed application to its end.
pub async fn run(route: Route, mut call: Call, ctx: Arc<AppContext>) {
    match route {
        Route::Deposit { mailbox } => deposit::run(&mut call, ctx, &mailbox).await,
    }
}
