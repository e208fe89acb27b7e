//! Follow the changes to the agency's linked persons; it survives disconnects and
//! resumes where it stopped. Keep the last index durable to resume after a restart.
//!
//! `HUDUMA_TOKEN=dev-kra-... cargo run -p client-sdk --example follow_changes -- 0`

use huduma_sdk::{Client, Error};
use tokio_stream::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let endpoint = std::env::var("HUDUMA_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let token = std::env::var("HUDUMA_TOKEN").unwrap_or_default();
    let from: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(0);

    let client = Client::builder(endpoint).token(token).connect_lazy()?;
    let mut changes = client.watch_changes(from);
    while let Some(change) = changes.next().await {
        let change = change?;
        // The number if the agency's policy shows it, else the agency's token.
        let who = change.number.map(|n| n.to_string()).or(change.agency_token).unwrap_or_default();
        println!("{} {:?} {who} {:?} {:?}", change.index, change.kind, change.status, change.record_ids);
    }
    Ok(())
}
