//! A synthetic Kenyan population with ground truth, for measuring the duplicate
//! search: persons drawn from the naming customs of Kenya's larger communities
//! (Kikuyu, Luhya, Kalenjin, Luo, Kamba, Somali, Kisii, Mijikenda), with Christian or
//! Muslim given names, community given and other names, and family names, names
//! weighted so that a few are very common (as they are); birth dates skewed young;
//! birth places near home. Planted duplicates are noisy re-enrolments of an earlier
//! person (typos, swapped names, variant spellings, dropped or promoted other names,
//! day and month swapped, the year off by one, upper case and diacritics, another
//! place), and a share of originals are twins of an earlier person (same family name,
//! birth date and place, another given name): the hard negatives.

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registry_core::demographics::{Demographics, Sex};

struct Community {
    weight: u32,
    female: &'static [&'static str],
    male: &'static [&'static str],
    /// Family names beyond the male names (most families carry a father's name).
    family: &'static [&'static str],
    places: &'static [&'static str],
    muslim: bool,
}

const CHRISTIAN_F: &[&str] = &[
    "Mary",
    "Grace",
    "Faith",
    "Mercy",
    "Esther",
    "Elizabeth",
    "Jane",
    "Ann",
    "Margaret",
    "Catherine",
    "Lucy",
    "Rose",
    "Joyce",
    "Irene",
    "Caroline",
    "Eunice",
    "Sarah",
    "Ruth",
    "Naomi",
    "Purity",
    "Winnie",
    "Beatrice",
    "Agnes",
    "Gladys",
    "Josephine",
    "Lilian",
    "Nancy",
    "Susan",
    "Alice",
    "Martha",
    "Diana",
    "Sharon",
    "Judith",
    "Hellen",
    "Damaris",
    "Rebecca",
    "Priscilla",
    "Veronica",
    "Stella",
    "Janet",
    "Everlyne",
    "Maureen",
    "Brenda",
    "Cynthia",
    "Christine",
    "Dorcas",
    "Doris",
    "Emily",
    "Florence",
    "Hannah",
    "Jackline",
    "Joy",
    "Judy",
    "Leah",
    "Lydia",
    "Monica",
    "Miriam",
    "Pauline",
    "Phyllis",
    "Rachel",
    "Rhoda",
    "Salome",
    "Tabitha",
    "Teresia",
    "Violet",
    "Winfred",
    "Zipporah",
    "Angela",
    "Belinda",
    "Dorothy",
    "Edith",
    "Emma",
    "Eva",
    "Felista",
    "Gloria",
    "Harriet",
    "Ivy",
    "Jacinta",
    "Jennifer",
    "Kate",
    "Linda",
    "Loice",
    "Lucia",
    "Mildred",
    "Millicent",
    "Nelly",
    "Peris",
    "Risper",
    "Roseline",
    "Sylvia",
    "Tracy",
    "Valentine",
    "Wilkister",
    "Yvonne",
    "Agatha",
    "Charity",
    "Consolata",
    "Hope",
    "Immaculate",
    "Jemimah",
    "Magdalene",
    "Patience",
    "Scholastica",
    "Sheila",
    "Terry",
    "Abigail",
    "Bridget",
    "Celestine",
    "Deborah",
    "Edna",
    "Fridah",
    "Hilda",
    "Josphine",
    "Lorna",
    "Marion",
    "Norah",
    "Pamela",
    "Rosemary",
    "Serah",
    "Vivian",
    "Wairimu",
];
const CHRISTIAN_M: &[&str] = &[
    "John",
    "Joseph",
    "Peter",
    "James",
    "David",
    "Daniel",
    "Samuel",
    "Paul",
    "Stephen",
    "Charles",
    "Francis",
    "Brian",
    "Kevin",
    "Dennis",
    "Collins",
    "Emmanuel",
    "Moses",
    "Joshua",
    "Patrick",
    "George",
    "Michael",
    "Anthony",
    "Robert",
    "Richard",
    "Simon",
    "Titus",
    "Vincent",
    "Wycliffe",
    "Kennedy",
    "Evans",
    "Geoffrey",
    "Isaac",
    "Eric",
    "Victor",
    "Felix",
    "Duncan",
    "Nelson",
    "Edwin",
    "Hillary",
    "Benson",
    "Alex",
    "Martin",
    "Timothy",
    "Stanley",
    "Thomas",
    "William",
    "Henry",
    "Edward",
    "Fredrick",
    "Lawrence",
    "Philip",
    "Andrew",
    "Mark",
    "Luke",
    "Matthew",
    "Elijah",
    "Elisha",
    "Jacob",
    "Abraham",
    "Gideon",
    "Caleb",
    "Nicholas",
    "Benjamin",
    "Jonathan",
    "Christopher",
    "Douglas",
    "Festus",
    "Gilbert",
    "Harrison",
    "Ian",
    "Jackson",
    "Julius",
    "Kenneth",
    "Leonard",
    "Morris",
    "Newton",
    "Oscar",
    "Raphael",
    "Silas",
    "Tobias",
    "Wilson",
    "Zachary",
    "Amos",
    "Boniface",
    "Cyrus",
    "Dickson",
    "Elvis",
    "Ezekiel",
    "Fidel",
    "Humphrey",
    "Job",
    "Josphat",
    "Lucas",
    "Nahashon",
    "Nathan",
    "Obadiah",
    "Reuben",
    "Sammy",
    "Shadrack",
    "Solomon",
    "Sylvester",
    "Wilfred",
    "Allan",
    "Bernard",
    "Clement",
    "Cornelius",
    "Enock",
    "Ephraim",
    "Gabriel",
    "Jared",
    "Justus",
    "Linus",
    "Maxwell",
    "Meshack",
    "Nixon",
    "Owen",
    "Rodgers",
    "Walter",
    "Ronald",
    "Albert",
    "Austin",
    "Bonface",
    "Dominic",
    "Ernest",
    "Fred",
    "Gerald",
    "Herman",
    "Jeremiah",
    "Levi",
];
const MUSLIM_F: &[&str] = &[
    "Fatuma",
    "Amina",
    "Halima",
    "Asha",
    "Khadija",
    "Zainab",
    "Hawa",
    "Mariam",
    "Sahra",
    "Ubah",
    "Hodan",
    "Fardosa",
    "Safia",
    "Nasra",
    "Sadia",
    "Habiba",
    "Ruqiya",
    "Maryan",
    "Deka",
    "Sagal",
    "Hamdi",
    "Ikran",
    "Anisa",
    "Naima",
    "Hibo",
    "Saida",
    "Rahma",
    "Salma",
    "Mwanaisha",
    "Zuhura",
    "Shamsa",
    "Amran",
    "Sumeya",
    "Faiza",
    "Nimo",
    "Samira",
    "Kaltuma",
    "Idil",
    "Sahara",
    "Hafsa",
];
const MUSLIM_M: &[&str] = &[
    "Mohamed",
    "Abdi",
    "Hassan",
    "Ali",
    "Ahmed",
    "Ibrahim",
    "Yusuf",
    "Omar",
    "Hussein",
    "Abdullahi",
    "Aden",
    "Farah",
    "Ismail",
    "Abdirahman",
    "Mahamud",
    "Bashir",
    "Abdikadir",
    "Abdinoor",
    "Osman",
    "Noor",
    "Gedi",
    "Warsame",
    "Dahir",
    "Salat",
    "Issack",
    "Hirsi",
    "Jama",
    "Muse",
    "Guleid",
    "Said",
    "Bakari",
    "Rashid",
    "Hamisi",
    "Salim",
    "Khalid",
    "Suleiman",
    "Musa",
    "Idris",
    "Yakub",
    "Abdiaziz",
    "Abdiwahab",
    "Mahat",
    "Maalim",
    "Kassim",
    "Duale",
    "Elmi",
    "Barre",
    "Ogle",
    "Keynan",
    "Sheikh",
];

const COMMUNITIES: &[Community] = &[
    // Kikuyu
    Community {
        weight: 17,
        female: &[
            "Wanjiku",
            "Wanjiru",
            "Nyambura",
            "Wambui",
            "Njeri",
            "Wairimu",
            "Wangari",
            "Muthoni",
            "Nyokabi",
            "Wangui",
            "Wacera",
            "Waithera",
            "Njoki",
            "Gathoni",
            "Mumbi",
            "Wanjugu",
            "Wangeci",
            "Nduta",
            "Wamaitha",
            "Wanjira",
            "Wahu",
            "Nyawira",
            "Wanja",
            "Wakarura",
            "Wamuyu",
            "Kabura",
            "Wangechi",
            "Wathoni",
            "Wambura",
            "Nyakio",
            "Warigia",
            "Wamucii",
            "Njambi",
            "Wangu",
            "Gacheri",
            "Ciru",
            "Kanyi",
            "Wakiuru",
            "Nyaguthii",
            "Waceke",
        ],
        male: &[
            "Kamau",
            "Mwangi",
            "Njoroge",
            "Kariuki",
            "Githinji",
            "Kinyanjui",
            "Macharia",
            "Gitau",
            "Waweru",
            "Maina",
            "Ndungu",
            "Mugo",
            "Karanja",
            "Kimani",
            "Njuguna",
            "Muriuki",
            "Wachira",
            "Ngugi",
            "Irungu",
            "Kiarie",
            "Njenga",
            "Gachanja",
            "Muthee",
            "Kuria",
            "Gathogo",
            "Kihara",
            "Mbugua",
            "Nganga",
            "Chege",
            "Wainaina",
            "Gichuki",
            "Mureithi",
            "Kibe",
            "Thuku",
            "Wanyoike",
            "Kagiri",
            "Ngige",
            "Kahiga",
            "Gikonyo",
            "Kamande",
            "Mutahi",
            "Githae",
            "Mbuthia",
            "Njogu",
            "Gakuru",
            "Karuri",
            "Wanjohi",
            "Kabiru",
            "Mathenge",
            "Muchiri",
            "Gachoki",
            "Ndirangu",
            "Ndegwa",
            "Kinuthia",
            "Warui",
            "Gatimu",
            "Kiragu",
            "Mwaura",
            "Nderitu",
            "Ngure",
            "Kangethe",
            "Kimotho",
            "Munene",
            "Kiiru",
            "Kamotho",
            "Ngatia",
            "Muturi",
            "Gachie",
            "Kiama",
            "Ndichu",
        ],
        family: &[],
        places: &["Kiambu", "Nyeri", "Murang'a", "Nairobi", "Kirinyaga", "Nyandarua", "Nakuru", "Laikipia"],
        muslim: false,
    },
    // Luhya
    Community {
        weight: 14,
        female: &[
            "Nafula",
            "Nekesa",
            "Naliaka",
            "Nasimiyu",
            "Nanjala",
            "Namalwa",
            "Nabwire",
            "Nakhumicha",
            "Nasambu",
            "Nangila",
            "Nabalayo",
            "Naswa",
            "Nasike",
            "Nafuna",
            "Nekoye",
            "Nanyama",
            "Nabangala",
            "Nelima",
            "Nakhungu",
            "Nasirumbi",
            "Khavele",
            "Ayuma",
            "Mmbone",
            "Kageha",
            "Imali",
            "Vugutsa",
            "Muhonja",
            "Nambuye",
        ],
        male: &[
            "Wafula",
            "Wekesa",
            "Barasa",
            "Wanjala",
            "Simiyu",
            "Masinde",
            "Wamalwa",
            "Khisa",
            "Makokha",
            "Shikuku",
            "Mukhwana",
            "Wasike",
            "Okumu",
            "Were",
            "Sifuna",
            "Namasaka",
            "Wanyama",
            "Wangila",
            "Mulongo",
            "Nyongesa",
            "Khaemba",
            "Wanyonyi",
            "Wamukoya",
            "Shitanda",
            "Mulama",
            "Makhanu",
            "Mukabi",
            "Shiundu",
            "Kundu",
            "Ambani",
            "Atsiaya",
            "Khamala",
            "Luvai",
            "Ngaira",
            "Anyira",
            "Malova",
            "Mukhisa",
            "Musungu",
            "Namwamba",
            "Wesonga",
            "Manyonge",
            "Situma",
            "Kutai",
            "Mabonga",
            "Kituyi",
            "Mukisu",
            "Mayeku",
            "Walubengo",
            "Etyang",
            "Omukhulu",
            "Lusweti",
            "Muchilwa",
            "Amukowa",
            "Indimuli",
        ],
        family: &["Juma", "Wanyonyi", "Mudavadi", "Wetangula", "Lumumba", "Oduya", "Okwemba", "Mwanje"],
        places: &["Kakamega", "Bungoma", "Vihiga", "Busia", "Trans Nzoia", "Nairobi"],
        muslim: false,
    },
    // Kalenjin
    Community {
        weight: 13,
        female: &[
            "Chebet",
            "Jepkosgei",
            "Jeruto",
            "Chelangat",
            "Chepkoech",
            "Jepchirchir",
            "Cherono",
            "Jelagat",
            "Chepngeno",
            "Jepchumba",
            "Chepkirui",
            "Cheptoo",
            "Jeptoo",
            "Chepkorir",
            "Jepkemboi",
            "Chemutai",
            "Jepkorir",
            "Chepchumba",
            "Cheptanui",
            "Jepkemoi",
            "Chepkurui",
            "Chelimo",
            "Jerop",
            "Chepngetich",
            "Chemeli",
            "Jebet",
            "Chepkemoi",
            "Jemutai",
            "Chepkwemoi",
            "Jepngetich",
        ],
        male: &[
            "Kiprono",
            "Kipchoge",
            "Kiprotich",
            "Kibet",
            "Kipkemboi",
            "Kiptoo",
            "Kipruto",
            "Kiplagat",
            "Kipkorir",
            "Kipchumba",
            "Kipkirui",
            "Kiprop",
            "Kipngeno",
            "Kipyegon",
            "Kiptanui",
            "Kipsang",
            "Kipkosgei",
            "Kipngetich",
            "Kiptum",
            "Kipkoech",
            "Kimutai",
            "Kiptarus",
            "Kipsigei",
            "Kipchirchir",
            "Kibiwott",
            "Kipkurgat",
            "Kipketer",
            "Kiprugut",
            "Kimeli",
            "Kipsiele",
        ],
        family: &[
            "Rotich",
            "Kirui",
            "Langat",
            "Koech",
            "Kosgei",
            "Ruto",
            "Bett",
            "Too",
            "Ngetich",
            "Korir",
            "Cheruiyot",
            "Tanui",
            "Sang",
            "Kemboi",
            "Chepkwony",
            "Mutai",
            "Keter",
            "Biwott",
            "Kirwa",
            "Kogo",
            "Kimaiyo",
            "Tum",
            "Lagat",
            "Yego",
            "Chumba",
            "Towett",
            "Kurgat",
            "Kigen",
            "Kibor",
            "Kenei",
            "Tuwei",
            "Serem",
            "Limo",
            "Sigei",
            "Rono",
            "Soi",
            "Maiyo",
            "Kemei",
            "Chirchir",
            "Kiplimo",
            "Kiprotich",
            "Kipchumba",
            "Kipruto",
            "Korir",
            "Kipkemoi",
            "Cheboi",
            "Kiptum",
            "Barngetuny",
        ],
        places: &["Uasin Gishu", "Kericho", "Bomet", "Nandi", "Elgeyo Marakwet", "Baringo", "Nakuru"],
        muslim: false,
    },
    // Luo
    Community {
        weight: 10,
        female: &[
            "Atieno", "Achieng", "Akinyi", "Adhiambo", "Awino", "Anyango", "Akoth", "Auma", "Apiyo", "Aoko", "Akello",
            "Amondi", "Aluoch", "Awuor", "Adongo", "Ajwang", "Aketch", "Akumu", "Amollo", "Ayoo", "Abuya", "Achola",
            "Adero", "Agola", "Akeyo", "Alando", "Ayugi", "Anyona", "Okumu", "Nyanjom",
        ],
        male: &[
            "Otieno", "Ochieng", "Odhiambo", "Onyango", "Owino", "Okoth", "Omondi", "Ouma", "Oduor", "Obiero",
            "Okello", "Owuor", "Ogola", "Oloo", "Opiyo", "Oyoo", "Odera", "Ochola", "Oketch", "Omolo", "Opondo",
            "Orwa", "Otiende", "Owiti", "Ogutu", "Okeyo", "Okinyi", "Olang", "Ombogo", "Onditi", "Ongere", "Onyuka",
            "Oruko", "Osewe", "Otiato", "Ouko", "Owaga", "Oyugi", "Obonyo", "Ojwang", "Ojiambo", "Okuku", "Odongo",
            "Oginga", "Oduol", "Amolo", "Ndege", "Nyamor",
        ],
        family: &["Juma", "Were", "Wandera", "Nyagaka"],
        places: &["Kisumu", "Siaya", "Homa Bay", "Migori", "Nairobi"],
        muslim: false,
    },
    // Kamba
    Community {
        weight: 10,
        female: &[
            "Mwende", "Mueni", "Ndunge", "Mwikali", "Ndinda", "Syombua", "Kanini", "Nduku", "Mutheu", "Kaluki",
            "Kasyoka", "Mumbua", "Kavata", "Mwongeli", "Ndanu", "Mbula", "Nthenya", "Kalekye", "Katunge", "Wayua",
            "Mwelu", "Mutanu", "Kamene", "Munee", "Kaveke", "Mutindi",
        ],
        male: &[
            "Mutua", "Musyoka", "Kioko", "Mutuku", "Kyalo", "Nzioka", "Kilonzo", "Muthama", "Wambua", "Mbithi",
            "Mutiso", "Musau", "Ndambuki", "Mwendwa", "Mulwa", "Kimeu", "Muema", "Nzomo", "Kitheka", "Mumo", "Mutinda",
            "Kavita", "Munyao", "Mwanzia", "Nthenge", "Makau", "Mulei", "Kiilu", "Mbuvi", "Kaloki", "Kituku", "Nzuki",
            "Kasina", "Ngui", "Maundu", "Muoki", "Mwikya", "Ndeti", "Kimanzi", "Kivuva", "Muasya", "Muli",
        ],
        family: &[],
        places: &["Machakos", "Kitui", "Makueni", "Nairobi"],
        muslim: false,
    },
    // Somali and other Muslim communities
    Community {
        weight: 6,
        female: MUSLIM_F,
        male: MUSLIM_M,
        family: &[],
        places: &["Garissa", "Wajir", "Mandera", "Nairobi", "Isiolo", "Mombasa"],
        muslim: true,
    },
    // Kisii
    Community {
        weight: 6,
        female: &[
            "Moraa",
            "Kerubo",
            "Nyaboke",
            "Bosibori",
            "Kemunto",
            "Nyanchama",
            "Kwamboka",
            "Nyamoita",
            "Bochaberi",
            "Nyakerario",
            "Kemuma",
            "Mokeira",
            "Nyabate",
            "Gesare",
            "Bonareri",
            "Nyanduko",
            "Nyamusi",
            "Nyaboe",
            "Mongina",
            "Nyasuguta",
        ],
        male: &[
            "Nyamweya", "Onsongo", "Omwenga", "Ongeri", "Nyakundi", "Mogaka", "Ombati", "Ondieki", "Momanyi",
            "Nyangau", "Ogeto", "Nyaanga", "Makori", "Moturi", "Obiri", "Matara", "Mokaya", "Nyabuto", "Osoro",
            "Ogari", "Mochama", "Nyachae", "Bosire", "Orina", "Ombui", "Kerosi", "Monari", "Nyambane", "Mogire",
            "Maranga", "Machuki", "Ratemo", "Nyarango", "Okemwa", "Arasa", "Ogoti", "Omwoyo", "Oseko",
        ],
        family: &[],
        places: &["Kisii", "Nyamira", "Nairobi"],
        muslim: false,
    },
    // Meru and Embu
    Community {
        weight: 7,
        female: &[
            "Kendi", "Makena", "Kawira", "Nkatha", "Gatwiri", "Karimi", "Kinya", "Nkirote", "Kathure", "Mukami",
            "Kagendo", "Ntinyari", "Kananu", "Kainda", "Njura", "Mwari", "Kagwiria", "Nkoroi", "Gakii", "Kaari",
        ],
        male: &[
            "Mwiti", "Kirimi", "Mutuma", "Gitonga", "Murithi", "Kinoti", "Mugambi", "Mwenda", "Kaberia", "Mutwiri",
            "Kimathi", "Koome", "Muthuri", "Kiogora", "Mbaabu", "Kaimenyi", "Nkonge", "Gikunda", "Mbae", "Njeru",
            "Nyaga", "Ireri", "Nthiga", "Mbogo", "Kiambati", "Mugendi", "Manyara", "Kithinji", "Muriungi", "Karani",
        ],
        family: &[],
        places: &["Meru", "Tharaka Nithi", "Embu", "Nairobi"],
        muslim: false,
    },
    // Mijikenda
    Community {
        weight: 5,
        female: &[
            "Kadzo",
            "Dama",
            "Sidi",
            "Kache",
            "Nyevu",
            "Mapenzi",
            "Rehema",
            "Mbeyu",
            "Mwanajuma",
            "Kanze",
            "Riziki",
            "Kavumbi",
            "Dzame",
            "Kadii",
            "Mwanaidi",
            "Furaha",
            "Sanita",
            "Zawadi",
        ],
        male: &[
            "Kazungu", "Charo", "Katana", "Baya", "Mwaka", "Kahindi", "Karisa", "Kenga", "Tsuma", "Ngala", "Kalume",
            "Kombe", "Chai", "Mwamburi", "Kitsao", "Ngumbao", "Chengo", "Mramba", "Jefwa", "Safari", "Mbaru", "Kiti",
            "Masha", "Nyale", "Ziro", "Dzombo", "Randu", "Menza", "Fondo", "Kadenge", "Mwadime",
        ],
        family: &[],
        places: &["Kilifi", "Kwale", "Mombasa"],
        muslim: false,
    },
];

/// Spelling variants a clerk might write for a name (the registry's own table knows
/// some of them; the rest test the phonetic and typo matching).
const VARIANTS: &[(&str, &str)] = &[
    ("Mohamed", "Mohammed"),
    ("Mohamed", "Muhammad"),
    ("Abdullahi", "Abdalla"),
    ("Hussein", "Husein"),
    ("Yusuf", "Yussuf"),
    ("Fatuma", "Fatma"),
    ("Otieno", "Otiyeno"),
    ("Ochieng", "Ochieng'"),
    ("Cheruiyot", "Cheruyot"),
    ("Jepkosgei", "Jepkoskei"),
    ("Catherine", "Cathrine"),
    ("Wycliffe", "Wyclife"),
    ("Geoffrey", "Jeffrey"),
    ("Wanjiku", "Wanjiko"),
    ("Everlyne", "Evelyne"),
    ("Hellen", "Helen"),
    ("Lilian", "Lillian"),
    ("Njoroge", "Njoroghe"),
    ("Kiprono", "Kipruno"),
    ("Nyambura", "Nyambora"),
];

/// One enrolment of the synthetic population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub demographics: Demographics,
    /// `Some(i)`: a planted duplicate of enrolment `i`.
    pub duplicate_of: Option<usize>,
    /// `Some(i)`: a twin (another person) of enrolment `i`.
    pub twin_of: Option<usize>,
}

/// Picks from a list with Zipf-like weights (rank^-0.9): a few names very common, as
/// they are (the commonest family names of a community are borne by several per cent).
fn zipf<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    static CUMULATIVE: OnceLock<Vec<f64>> = OnceLock::new();
    let cumulative = CUMULATIVE.get_or_init(|| {
        let mut sum = 0.0;
        (1..=LONGEST_LIST)
            .map(|r| {
                sum += (r as f64).powf(-0.9);
                sum
            })
            .collect()
    });
    let len = list.len().min(LONGEST_LIST);
    let x = rng.r#gen::<f64>() * cumulative[len - 1];
    let at = cumulative[..len].partition_point(|c| *c < x);
    list[at.min(len - 1)]
}

/// No name list is longer than this.
const LONGEST_LIST: usize = 256;

fn community(rng: &mut StdRng) -> &'static Community {
    let total: u32 = COMMUNITIES.iter().map(|c| c.weight).sum();
    let mut x = rng.gen_range(0..total);
    for c in COMMUNITIES {
        if x < c.weight {
            return c;
        }
        x -= c.weight;
    }
    &COMMUNITIES[0]
}

fn days_in(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn original(rng: &mut StdRng) -> Demographics {
    let c = community(rng);
    let sex = if rng.gen_bool(0.5) { Sex::Female } else { Sex::Male };
    let (ethnic, foreign) = match sex {
        Sex::Female => (c.female, if c.muslim { MUSLIM_F } else { CHRISTIAN_F }),
        _ => (c.male, if c.muslim { MUSLIM_M } else { CHRISTIAN_M }),
    };
    let (given, mut other_names) = if c.muslim {
        // A given name, the father's and the grandfather's (the family name).
        let father = if rng.gen_bool(0.85) { vec![zipf(rng, MUSLIM_M).to_string()] } else { vec![] };
        (zipf(rng, foreign).to_string(), father)
    } else if rng.gen_bool(0.65) {
        // A Christian name with a community name beside it, as most carry.
        let given = zipf(rng, foreign).to_string();
        let others = if rng.gen_bool(0.8) { vec![zipf(rng, ethnic).to_string()] } else { vec![] };
        (given, others)
    } else {
        let given = zipf(rng, ethnic).to_string();
        let others = if rng.gen_bool(0.4) { vec![zipf(rng, foreign).to_string()] } else { vec![] };
        (given, others)
    };
    if rng.gen_bool(0.08) {
        other_names.push(zipf(rng, ethnic).to_string());
    }
    let mut seen = vec![given.clone()];
    other_names.retain(|o| {
        let fresh = !seen.contains(o);
        seen.push(o.clone());
        fresh
    });
    // Kenya is young: the share of each age falls steadily from birth to 85 (a
    // triangular pyramid: about 2.4% of the population in each of the youngest years).
    let age = (85.0 * (1.0 - (1.0 - rng.r#gen::<f64>()).sqrt())) as i32;
    let year = 2025 - age;
    let month = rng.gen_range(1..=12);
    let day = rng.gen_range(1..=days_in(year, month));
    let place = if rng.gen_bool(0.85) { zipf(rng, c.places) } else { "Nairobi" };
    // A family name (most often a father's name) that is not one of the person's own.
    let mut family = family_name(rng, c);
    while family == given || other_names.iter().any(|o| o == family) {
        family = family_name(rng, c);
    }
    Demographics {
        given_name: given,
        family_name: family.to_string(),
        other_names,
        date_of_birth: format!("{year}-{month:02}-{day:02}"),
        sex,
        place_of_birth: place.to_string(),
    }
}

/// A family name of community `c`: its own family names or a man's name, in proportion.
fn family_name(rng: &mut StdRng, c: &Community) -> &'static str {
    let own = c.family.len() as f64 / (c.family.len() + c.male.len()) as f64;
    if c.muslim {
        zipf(rng, MUSLIM_M)
    } else if rng.gen_bool(own) {
        zipf(rng, c.family)
    } else {
        zipf(rng, c.male)
    }
}

fn typo(rng: &mut StdRng, name: &str) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    if chars.len() < 4 {
        return name.to_string();
    }
    let at = rng.gen_range(1..chars.len() - 1);
    let letter = (b'a' + rng.gen_range(0..26)) as char;
    match rng.gen_range(0..4) {
        0 => chars[at] = letter,
        1 => {
            chars.remove(at);
        }
        2 => chars.insert(at, letter),
        _ => chars.swap(at, at + 1),
    }
    chars.into_iter().collect()
}

fn variant(name: &str) -> Option<&'static str> {
    VARIANTS.iter().find_map(|(a, b)| {
        if *a == name {
            Some(*b)
        } else if *b == name {
            Some(*a)
        } else {
            None
        }
    })
}

/// One kind of enrolment noise; returns whether it applied.
fn perturb(rng: &mut StdRng, d: &mut Demographics) -> bool {
    match rng.gen_range(0..100) {
        0..=27 => {
            if rng.gen_bool(0.5) {
                d.given_name = typo(rng, &d.given_name);
            } else {
                d.family_name = typo(rng, &d.family_name);
            }
            true
        }
        28..=39 => {
            let names = [d.given_name.clone(), d.family_name.clone()];
            match (variant(&names[0]), variant(&names[1])) {
                (Some(v), _) => d.given_name = v.to_string(),
                (None, Some(v)) => d.family_name = v.to_string(),
                (None, None) => return false,
            }
            true
        }
        40..=52 => {
            std::mem::swap(&mut d.given_name, &mut d.family_name);
            true
        }
        53..=62 => {
            if d.other_names.is_empty() {
                return false;
            }
            if rng.gen_bool(0.5) {
                d.other_names.clear();
            } else {
                // The other name used as the given name.
                let other = d.other_names.remove(0);
                d.other_names.push(std::mem::replace(&mut d.given_name, other));
            }
            true
        }
        63..=72 => {
            let (y, m, day) = split_date(&d.date_of_birth);
            if day > 12 || day == m {
                return false;
            }
            d.date_of_birth = format!("{y}-{day:02}-{m:02}");
            true
        }
        73..=82 => {
            let (y, m, day) = split_date(&d.date_of_birth);
            let y = if rng.gen_bool(0.5) { y - 1 } else { (y + 1).min(2024) };
            d.date_of_birth = format!("{y}-{m:02}-{:02}", day.min(days_in(y, m)));
            true
        }
        83..=92 => {
            if rng.gen_bool(0.5) {
                d.given_name = d.given_name.to_uppercase();
                d.family_name = d.family_name.to_uppercase();
            } else {
                d.given_name = d.given_name.replacen('a', "á", 1).replacen('e', "é", 1);
            }
            true
        }
        _ => {
            let places = COMMUNITIES[rng.gen_range(0..COMMUNITIES.len())].places;
            d.place_of_birth = zipf(rng, places).to_string();
            true
        }
    }
}

fn split_date(text: &str) -> (i32, u32, u32) {
    let mut parts = text.split('-').map(|p| p.parse::<i64>().unwrap_or(1));
    let (y, m, d) = (parts.next().unwrap_or(1990), parts.next().unwrap_or(1), parts.next().unwrap_or(1));
    (y as i32, m as u32, d as u32)
}

/// `n` enrolments, of which `duplicates` (a share, e.g. 0.02) are planted duplicates
/// of earlier ones (one or two kinds of noise each; one in twenty exact) and `twins`
/// (a share of the originals) are twins of earlier persons. Originals come first,
/// then the duplicates, each after the person it duplicates. Deterministic per seed.
pub fn generate(n: usize, duplicates: f64, twins: f64, seed: u64) -> Vec<Enrolment> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dups = (n as f64 * duplicates).round() as usize;
    let originals = n - dups;
    let mut out: Vec<Enrolment> = Vec::with_capacity(n);
    for i in 0..originals {
        if i > 0 && rng.gen_bool(twins) {
            let of = rng.gen_range(0..i);
            let mut twin = out[of].demographics.clone();
            let c = community(&mut rng);
            twin.sex = if rng.gen_bool(0.5) { Sex::Female } else { Sex::Male };
            // A twin's given name is none of the other twin's names.
            let list = if twin.sex == Sex::Female { c.female } else { c.male };
            let taken = |name: &str| {
                let o = &out[of].demographics;
                name == o.given_name || name == o.family_name || o.other_names.iter().any(|x| x == name)
            };
            let mut given = zipf(&mut rng, list);
            for _ in 0..20 {
                if !taken(given) {
                    break;
                }
                given = zipf(&mut rng, list);
            }
            if taken(given) {
                given = if twin.sex == Sex::Female { "Zawadi" } else { "Baraka" };
            }
            twin.given_name = given.to_string();
            twin.other_names.clear();
            out.push(Enrolment { demographics: twin, duplicate_of: None, twin_of: Some(of) });
        } else {
            out.push(Enrolment { demographics: original(&mut rng), duplicate_of: None, twin_of: None });
        }
    }
    for _ in 0..dups {
        let of = rng.gen_range(0..originals);
        let mut d = out[of].demographics.clone();
        if !rng.gen_bool(0.05) {
            let kinds = if rng.gen_bool(0.7) { 1 } else { 2 };
            let mut applied = 0;
            while applied < kinds {
                if perturb(&mut rng, &mut d) {
                    applied += 1;
                }
            }
        }
        out.push(Enrolment { demographics: d, duplicate_of: Some(of), twin_of: None });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_population_is_valid_deterministic_and_has_its_ground_truth() {
        let today = time::Date::from_calendar_date(2026, time::Month::November, 22).unwrap_or(time::Date::MIN);
        let people = generate(5000, 0.02, 0.005, 7);
        assert_eq!(people, generate(5000, 0.02, 0.005, 7));
        assert_eq!(people.iter().filter(|e| e.duplicate_of.is_some()).count(), 100);
        for e in &people {
            assert!(e.demographics.validate(today).is_ok(), "{:?}", e.demographics);
            if let Some(of) = e.duplicate_of {
                assert!(of < 4900 && people[of].duplicate_of.is_none());
            }
        }
        assert!(people.iter().any(|e| e.twin_of.is_some()));
    }
}
