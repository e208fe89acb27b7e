//! The Huduma Registry SDK. Today it offers what works offline: the typed
//! [`HudumaNumber`], which catches a typo (any single wrong digit, any swap of two
//! neighbours) before a call is made. The gRPC client arrives with the server.
//!
//! ```
//! use huduma_sdk::HudumaNumber;
//!
//! let number = HudumaNumber::with_check_digit(29_473_615_839).unwrap();
//! let typed = number.to_string().replace(' ', "-");
//! assert_eq!(typed.parse::<HudumaNumber>().unwrap(), number);
//! ```

pub use huduma_number::{HudumaNumber, NumberError};

/// Checks a number as a person typed it, naming the rule broken.
pub fn check_number(text: &str) -> Result<HudumaNumber, NumberError> {
    text.parse()
}
