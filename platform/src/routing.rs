//! `routes!`: each area declares its routes once, with the access each needs. The macro builds
//! the area's axum router from the list and keeps the list (`ROUTES`) for the capability test,
//! the OpenAPI check and metrics labels. Each route's [`crate::access::Access`] travels in the
//! request's extensions, where the session extractors enforce it.

/// `routes! { get "/path" => handler, Access; … }` (or `routes! { api { … } pages { … } }` when
/// the area also serves HTML pages, which the OpenAPI document does not list) in an area module
/// defines `pub const ROUTES`
/// and `pub(crate) fn declared_routes()`. Needs `RouteSpec`, `AppState`, `Router` and
/// `Extension` in scope.
macro_rules! routes {
    (
        api { $( $method:ident $path:literal => $handler:path, $access:expr; )* }
        pages { $( $pmethod:ident $ppath:literal => $phandler:path, $paccess:expr; )* }
    ) => {
        /// This area's routes with the access each requires (see [`crate::access`]).
        pub const ROUTES: &[RouteSpec] = &[
            $( RouteSpec { method: routes!(@upper $method), path: $path, access: $access, api: true }, )*
            $( RouteSpec { method: routes!(@upper $pmethod), path: $ppath, access: $paccess, api: false }, )*
        ];

        /// This area's axum router, each route carrying its declared access.
        pub(crate) fn declared_routes() -> Router<AppState> {
            Router::new()
                $( .route($path, axum::routing::$method($handler).layer(Extension($access))) )*
                $( .route($ppath, axum::routing::$pmethod($phandler).layer(Extension($paccess))) )*
        }
    };
    ($( $method:ident $path:literal => $handler:path, $access:expr; )*) => {
        routes! { api { $( $method $path => $handler, $access; )* } pages {} }
    };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
    (@upper put) => { "PUT" };
    (@upper delete) => { "DELETE" };
}
