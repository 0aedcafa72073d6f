//! mp_client: DPDK's client_server_mp client (lesson 7, lab 3). See `shoal_apps::client`.

fn main() {
    std::process::exit(shoal_apps::client::main(std::env::args().collect()));
}
