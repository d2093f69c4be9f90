"""Vocabulary of the demo data: staff, people, devices, and what tickets say per category."""

from __future__ import annotations

#: (username, full name, role key, capacity). Usernames are what the demo accounts log in with.
DEMO_STAFF: list[tuple[str, str, str, int]] = [
    ("lead", "Morgan Reyes", "lead", 6),
    ("senior1", "Priya Nair", "senior", 12),
    ("senior2", "Tomasz Kowalski", "senior", 12),
    ("tech1", "Alex Chen", "technician", 18),
    ("tech2", "Sam Okafor", "technician", 18),
    ("tech3", "Jordan Blake", "technician", 16),
    ("tech4", "Maria Santos", "technician", 16),
    ("tech5", "Chris Müller", "technician", 15),
    ("tech6", "Aisha Rahman", "technician", 15),
    ("tech7", "Liam O'Brien", "technician", 14),
    ("tech8", "Yuki Tanaka", "technician", 14),
]

FIRST_NAMES = (
    "Olivia Noah Amelia Oliver Isla George Ava Arthur Mia Leo Ivy Harry Freya Oscar Lily Jack Ella Charlie "
    "Grace Muhammad Sophia Henry Chloe Thomas Emily William Zara Jacob Hannah Daniel Ruth Samuel Nadia Omar "
    "Elena Marco Ana Lukas Sofia Mateo Ingrid Pavel Fatima Kwame Mei Ravi Sinead Tariq Ewa Jonas Leila"
).split()
LAST_NAMES = (
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Robinson Wright Thompson Evans Walker White "
    "Roberts Green Hall Thomas Clarke Jackson Wood Harris Edwards Turner Martin Cooper Hill Ward Hughes Moore "
    "Clark King Harrison Lewis Baker Lee Allen Morris Khan Scott Watson Davis Parker James Bennett Young Price "
    "Nowak Silva Fischer Rossi Kaur Haddad Ivanova Murphy Okoye Novak Lindqvist"
).split()
DEPARTMENTS = (
    "Finance", "Human Resources", "Sales", "Marketing", "Operations", "Legal", "Engineering", "Customer Service",
    "Procurement", "Facilities", "Executive Office", "Warehouse",
)
SITES = ("HQ", "North Office", "Riverside", "Warehouse", "Lab")
FLOORS = ("Ground floor", "1st floor", "2nd floor", "3rd floor", "4th floor")

#: device type -> (make/model, OS) choices
DEVICE_MODELS: dict[str, list[tuple[str, str]]] = {
    "Laptop": [
        ("Dell Latitude 5440", "Windows 11 23H2"), ("Lenovo ThinkPad T14 Gen 4", "Windows 11 23H2"),
        ("HP EliteBook 840 G10", "Windows 11 22H2"), ("Apple MacBook Pro 14 M3", "macOS 14 Sonoma"),
        ("Dell XPS 13 9315", "Ubuntu 22.04 LTS"), ("Lenovo ThinkPad X1 Carbon Gen 11", "Windows 11 23H2"),
    ],
    "Desktop": [
        ("Dell OptiPlex 7010", "Windows 10 22H2"), ("HP ProDesk 400 G9", "Windows 11 23H2"),
        ("Lenovo ThinkCentre M70q", "Windows 11 22H2"), ("Apple iMac 24 M3", "macOS 14 Sonoma"),
    ],
    "Printer": [
        ("HP LaserJet M404", "FutureSmart 5.6"), ("HP Color LaserJet Pro M479fdw", "FutureSmart 5.5"),
        ("Brother HL-L5100DN", "Firmware 1.45"), ("Canon imageRUNNER C3226", "Firmware 66.01"),
        ("Xerox VersaLink C405", "Firmware 62.5"),
    ],
    "Phone": [
        ("Apple iPhone 14", "iOS 17"), ("Samsung Galaxy S23", "Android 14"), ("Cisco IP Phone 8841", "SIP 14.2"),
    ],
    "Network": [
        ("Cisco Catalyst 9200L", "IOS XE 17.9"), ("Ubiquiti UniFi U6 Pro", "UniFi 6.6"),
        ("Fortinet FortiGate 60F", "FortiOS 7.2"), ("Aruba 2930F", "ArubaOS 16.11"),
    ],
    "Server": [
        ("Dell PowerEdge R650", "Windows Server 2022"), ("HPE ProLiant DL380 Gen10", "Ubuntu 22.04 LTS"),
        ("Synology RS1221+", "DSM 7.2"),
    ],
}

APPS = ("Outlook", "Teams", "Excel", "SAP", "Salesforce", "the VPN client", "Chrome", "Adobe Acrobat", "Zoom",
        "the HR portal", "OneDrive", "the expenses app")
VENDORS = ("HP Support", "Dell ProSupport", "Microsoft Support", "Cisco TAC", "Canon Service", "Lenovo Premier",
           "SAP Support", "Fortinet TAC")

#: category name -> summaries ({app}, {model}, {site} are filled in)
SUMMARIES: dict[str, list[str]] = {
    "Networking": [
        "No network connection at desk in {site}", "Wi-Fi drops every few minutes in {site}",
        "VPN disconnects when working from home", "Cannot reach the file server from {site}",
        "Very slow internet in meeting rooms", "Network port dead at desk", "DNS errors opening intranet pages",
    ],
    "Hardware": [
        "Laptop {model} does not power on", "Docking station not detecting monitors", "Keyboard keys not working",
        "Battery drains within an hour on {model}", "Blue screen after docking {model}", "Monitor flickering",
        "Fan very loud and laptop overheating", "Webcam not detected in {app}",
    ],
    "Software": [
        "{app} crashes on start", "{app} very slow since the last update", "Cannot install {app}",
        "{app} asks for a licence", "Error when saving files in {app}", "Need {app} installed",
        "{app} add-in missing", "Calendar not syncing in {app}",
    ],
    "Printing": [
        "Printer {model} jams on tray 2", "Cannot print to {model} from {app}", "Printouts faded on {model}",
        "Scan to e-mail not working on {model}", "Print jobs stuck in queue in {site}", "Toner low warning on {model}",
    ],
    "Account Issues": [
        "Password expired and cannot log in", "Account locked out", "MFA prompt not arriving on phone",
        "Need access to the {app} shared folder", "New starter needs an account in {app}",
        "Leaver account to be disabled", "Mailbox full, cannot send e-mail", "Cannot log in to {app}",
    ],
    "Other": [
        "Question about equipment loan", "Meeting room screen not working in {site}",
        "Request for a second monitor", "Phone extension not ringing", "Help setting up a presentation",
    ],
}
ALERT_SUMMARIES: dict[str, list[str]] = {
    "Networking": ["ALERT: switch {model} unreachable in {site}", "ALERT: packet loss above 5% on uplink in {site}",
                   "ALERT: firewall {model} high CPU"],
    "Hardware": ["ALERT: disk failure predicted on {model}", "ALERT: UPS on battery in {site}",
                 "ALERT: server {model} temperature high"],
    "Software": ["ALERT: backup job failed", "ALERT: certificate expires in 7 days", "ALERT: mail queue growing"],
}
DESCRIPTIONS = (
    "Reported by the user; it started this morning.", "Happens several times a day.",
    "Blocking the user's work on a deadline.", "Colleagues nearby see the same.",
    "Started after the weekend's updates.", "User already tried a restart.", "Intermittent; no clear pattern yet.",
)
ACTIONS: dict[str, list[str]] = {
    "diagnosis": ["Checked the event log and recent changes", "Reviewed the error message with the user",
                  "Checked connectivity and DNS", "Checked account status in the directory",
                  "Ran hardware diagnostics"],
    "reproduction": ["Reproduced the fault on a test machine", "Reproduced with the user over remote session",
                     "Could reproduce only on this device"],
    "troubleshooting": ["Cleared the cache and profile", "Reinstalled the driver", "Replaced the cable",
                        "Reset the configuration to defaults", "Applied the pending updates",
                        "Moved the user to another port"],
    "other": ["Ordered a spare part", "Updated the asset record"],
}
RESOLUTIONS = (
    "Replaced the faulty part and tested with the user", "Reinstalled the application and restored settings",
    "Reset the account and set up MFA again", "Updated the driver; fault no longer occurs",
    "Reconfigured the network port", "Cleared the print queue and updated firmware",
    "Granted the access requested", "Applied the vendor's fix",
)
ROOT_CAUSES = (
    "Worn hardware component", "Faulty update from the vendor", "Expired credentials", "Misconfiguration after a change",
    "Corrupt user profile", "Damaged cable", "Licence not assigned", "Capacity limit reached",
)
UNKNOWN_CAUSES = (
    "Could not reproduce after the restart", "Fault disappeared after the update; cause not found",
    "Intermittent fault; no logs left to analyse",
)
CANCEL_NOTES = ("Requester no longer needs this", "Requester solved it themselves", "Raised by mistake")
