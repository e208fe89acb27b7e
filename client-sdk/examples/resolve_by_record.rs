//! Resolve a citizen from the agency's own record id.
//!
//! `HUDUMA_TOKEN=dev-kra-... cargo run -p client-sdk --example resolve_by_record -- KRA A012345678Z`

use huduma_sdk::{AgencyRecord, Client, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let endpoint = std::env::var("HUDUMA_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let token = std::env::var("HUDUMA_TOKEN").unwrap_or_default();
    let mut args = std::env::args().skip(1);
    let (agency, record) = (args.next().unwrap_or_default(), args.next().unwrap_or_default());

    let client = Client::connect(endpoint, token).await?;
    match client.resolve(AgencyRecord::new(agency, record), "benefit eligibility").await {
        Ok(person) => println!(
            "{:?}, Huduma number {:?}, token {:?}",
            person.status,
            person.current_number(),
            person.agency_token
        ),
        Err(Error::NotFound(_)) => println!("no person holds that record"),
        Err(e) => return Err(e),
    }
    Ok(())
}
