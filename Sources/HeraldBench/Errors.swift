/// Why a bench run stopped early. `usage` exits 2 (bad options), `failure` exits 1
/// (connection refused, server closed, timeouts).
enum BenchError: Error {
    case usage(String)
    case failure(String)
}
