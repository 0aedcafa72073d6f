//! mp_server: DPDK's client_server_mp server (lesson 7, lab 3). See `shoal_apps::server`.

fn main() {
    std::process::exit(shoal_apps::server::main(std::env::args().collect()));
}
