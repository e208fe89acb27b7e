//! Link the agency's own record to a citizen. The request id makes it safe to retry:
//! the SDK retries lost answers with it, and so may you.
//!
//! `HUDUMA_TOKEN=dev-kra-... cargo run -p client-sdk --example link_record -- "2345 6789 0127" A012345678Z`

use huduma_sdk::{AgencyRecord, Client, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let endpoint = std::env::var("HUDUMA_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let token = std::env::var("HUDUMA_TOKEN").unwrap_or_default();
    let mut args = std::env::args().skip(1);
    let (number, record_id) = (args.next().unwrap_or_default(), args.next().unwrap_or_default());

    let client = Client::connect(endpoint, token).await?;
    // A stable id per (number, record): rerunning this program links once.
    let request_id = format!("link-{}-{record_id}", number.replace([' ', '-'], ""));
    match client.link_agency_record(&request_id, &number, &AgencyRecord::new("KRA", record_id), "").await {
        Ok(receipt) => println!("linked at log index {}", receipt.index),
        Err(Error::AlreadyExists(why)) => println!("already linked: {why}"),
        Err(e) => return Err(e),
    }
    Ok(())
}
