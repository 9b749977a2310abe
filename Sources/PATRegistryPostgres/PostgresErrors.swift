import PATRegistry
import PostgresNIO

/// PostgreSQL errors in the registry's terms: what happened and what to do, never the query's
/// parameters (PAT ids, names) or a password.
enum PostgresErrors {
    static func sqlState(_ error: PSQLError) -> String? { error.serverInfo?[.sqlState] }

    /// A deadlock or serialization failure: the transaction may simply run again.
    static func isRetryable(_ error: PSQLError) -> Bool {
        guard let state = sqlState(error) else { return false }
        return state == "40001" || state == "40P01"
    }

    /// The connection broke (the server went away, the network failed).
    static func isConnectionLoss(_ error: PSQLError) -> Bool {
        [.serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown, .poolClosed].contains(error.code)
    }

    /// The registry's error for `error`; a `RegistryError` passes through, and so does any
    /// error that is not PostgreSQL's (e.g. one the transaction's body threw).
    static func describe(_ error: any Error, database: String) -> any Error {
        if let error = error as? PSQLError { return describe(error, database: database) }
        if let error = error as? PostgresTransactionError {
            return describe(error.closureError ?? error.commitError ?? error.beginError ?? error.rollbackError ?? error, database: database)
        }
        return error
    }

    /// A failed first connection: the server's reason (login, database name) or why it could not
    /// be reached.
    static func describeConnect(_ error: any Error, database: String) -> any Error {
        if let error = error as? PSQLError, error.serverInfo != nil || error.code == .sslUnsupported
            || error.code == .authMechanismRequiresPassword {
            return describe(error, database: database)
        }
        let reason = (error as? PSQLError)?.underlying.map { "\($0)" } ?? "\(error)"
        return RegistryError(.unavailable, "cannot connect to the registry database \(database) (\(reason)): is the server up "
                             + "and listening there?")
    }

    static func describe(_ error: PSQLError, database: String) -> RegistryError {
        if isConnectionLoss(error) {
            return RegistryError(.unavailable, "lost the connection to the registry database \(database): is the server up?")
        }
        guard let state = sqlState(error) else {
            switch error.code {
            case .queryCancelled:
                return RegistryError(.unavailable, "a query to the registry database \(database) was cancelled")
            case .sslUnsupported:
                return RegistryError(.database, "the registry database \(database) does not offer TLS, and the URL requires it "
                                     + "(sslmode=require)")
            case .authMechanismRequiresPassword:
                return RegistryError(.database, "the registry database \(database) asks for a password: put it in the URL "
                                     + "(PAT_DATABASE_URL) or in PGPASSWORD")
            default:
                return RegistryError(.unavailable, "cannot use the registry database \(database) (\(error.code))")
            }
        }
        let message = error.serverInfo?[.message] ?? "error \(state)"
        switch state {
        case "23505", "23P01":
            return RegistryError(.conflict, "registry \(database): \(message)")
        case "23502", "23503", "23514":
            return RegistryError(.invalid, "registry \(database): \(message)")
        case "28P01", "28000":
            return RegistryError(.database, "the registry database \(database) refused the login (\(message)): check the user and "
                                 + "password in the URL")
        case "3D000":
            return RegistryError(.database, "the registry database \(database) does not exist: create it (createdb), or fix the URL")
        case "42501":
            return RegistryError(.database, "the user of \(database) lacks a privilege (\(message)): grant it what the registry needs "
                                 + "(CREATE on the database for the first start, then use of the schema patkit)")
        case "55P03":
            return RegistryError(.unavailable, "registry \(database): waited too long for a lock another node or process holds; "
                                 + "try again")
        case "57014":
            return RegistryError(.unavailable, "registry \(database): a statement ran past its time limit; try again")
        case "40001", "40P01":
            return RegistryError(.unavailable, "registry \(database): the transaction kept conflicting with others; try again")
        case "53300", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004", "53100", "53200", "25P03":
            return RegistryError(.unavailable, "the registry database \(database) is unavailable (\(message)); try again later")
        case "22021":
            return RegistryError(.invalid, "registry \(database): text the database cannot store (\(message))")
        default:
            return RegistryError(.database, "registry \(database): \(message) (SQLSTATE \(state))")
        }
    }
}
