//! Resolve a citizen by Huduma number, as an agency system does.
//!
//! `HUDUMA_ENDPOINT=http://127.0.0.1:50051 HUDUMA_TOKEN=dev-kra-... \
//!  cargo run -p client-sdk --example resolve_by_number -- "2345 6789 0127"`

use huduma_sdk::{Client, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let endpoint = std::env::var("HUDUMA_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let token = std::env::var("HUDUMA_TOKEN").unwrap_or_default();
    let number = std::env::args().nth(1).unwrap_or_default();

    let client = Client::connect(endpoint, token).await?;
    let person = client.resolve_number(&number, "PIN registration").await?;
    println!(
        "{number} is {:?}; in force: {:?}; our token: {:?}",
        person.status,
        person.current_number(),
        person.agency_token
    );
    if let Some(d) = &person.demographics {
        // Only what this agency's disclosure policy allows is filled in.
        println!("{:?} {:?}, born {:?}", d.given_name, d.family_name, d.date_of_birth);
    }
    Ok(())
}
