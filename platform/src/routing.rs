//! `routes!`: each area declares its routes once, with the access each needs. The macro builds
//! the area's axum router from the list and keeps the list (`ROUTES`) for the capability test,
//! the OpenAPI check and metrics labels. Each route's [`crate::access::Access`] travels in the
//! request's extensions, where the session extractors enforce it.

/// `routes! { get "/path" => handler, Access; … }` in an area module defines `pub const ROUTES`
/// and `pub(crate) fn declared_routes()`. Needs `RouteSpec`, `AppState`, `Router` and
/// `Extension` in scope.
macro_rules! routes {
    ($( $method:ident $path:literal => $handler:path, $access:expr; )*) => {
        /// This area's routes with the access each requires (see [`crate::access`]).
        pub const ROUTES: &[RouteSpec] = &[
            $( RouteSpec { method: routes!(@upper $method), path: $path, access: $access }, )*
        ];

        /// This area's axum router, each route carrying its declared access.
        pub(crate) fn declared_routes() -> Router<AppState> {
            Router::new()
                $( .route($path, axum::routing::$method($handler).layer(Extension($access))) )*
        }
    };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
    (@upper put) => { "PUT" };
    (@upper delete) => { "DELETE" };
}
