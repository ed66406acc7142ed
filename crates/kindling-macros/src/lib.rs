//! `#[kindling::test]`: registers an `async fn` as a test of the suite in
//! whose test target it is defined. Use it through the `kindling` crate or
//! the `kindling-harness` crate (`#[kindling_harness::test]`).
//!
//! ```no_run
//! #[kindling_harness::test(timeout = "30s")]
//! async fn arithmetic_still_works() -> kindling_harness::TestResult {
//!     assert_eq!(2 + 2, 4);
//!     Ok(())
//! }
//!
//! kindling_harness::main!();
//! ```

#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Token, parse_macro_input};

const USAGE: &str = "expected `#[kindling::test]` with any of `ignore`, `timeout = \"30s\"` and `requires = <a Requirement>` (repeatable)";

/// Registers an `async fn` as a kindling test.
///
/// The function takes no argument (it then needs no environment, and
/// selecting only such tests runs no setup) or one `TestContext<Env>`, and
/// returns `()` or a `Result<(), E>`. Options: `ignore`, `timeout = "30s"`,
/// and `requires = <expression>` (repeatable): a `Requirement` the test
/// needs beyond the suite's, such as `requires = Requirement::docker()`;
/// missing, the test is listed as ignored (SKIP under nextest) and fails
/// when `CI` is set, as with `TestOptions::requires`. The expression is
/// evaluated when the suite starts, listing included, so it must not have
/// side effects.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = parse_macro_input!(attr with Punctuated::<Meta, Token![,]>::parse_terminated);
    let function = parse_macro_input!(item as ItemFn);
    match expand(options, function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

struct Options {
    ignored: bool,
    timeout_ms: Option<u64>,
    requirements: Vec<Expr>,
}

fn parse_options(options: Punctuated<Meta, Token![,]>) -> syn::Result<Options> {
    let mut parsed = Options {
        ignored: false,
        timeout_ms: None,
        requirements: Vec::new(),
    };
    for option in options {
        match &option {
            Meta::Path(path) if path.is_ident("ignore") => parsed.ignored = true,
            Meta::NameValue(pair) if pair.path.is_ident("requires") => {
                parsed.requirements.push(pair.value.clone());
            }
            Meta::NameValue(pair) if pair.path.is_ident("timeout") => {
                let Expr::Lit(ExprLit {
                    lit: Lit::Str(text),
                    ..
                }) = &pair.value
                else {
                    return Err(syn::Error::new(
                        pair.value.span(),
                        "`timeout` takes a string such as \"30s\" or \"5m\"",
                    ));
                };
                let duration = humantime::parse_duration(&text.value())
                    .ok()
                    .filter(|duration| !duration.is_zero())
                    .ok_or_else(|| {
                        syn::Error::new(
                            text.span(),
                            format!(
                                "invalid timeout \"{}\": expected a positive duration such as \"30s\", \"5m\" or \"1h 30m\"",
                                text.value()
                            ),
                        )
                    })?;
                parsed.timeout_ms = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("unknown option in #[kindling::test]: {USAGE}"),
                ));
            }
        }
    }
    Ok(parsed)
}

fn expand(
    options: Punctuated<Meta, Token![,]>,
    function: ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let options = parse_options(options)?;
    let signature = &function.sig;
    check_signature(signature)?;
    let name = &signature.ident;
    let name_text = name.to_string();
    let ignored = options.ignored;
    let timeout = match options.timeout_ms {
        Some(millis) => quote!(::core::option::Option::Some(#millis)),
        None => quote!(::core::option::Option::None),
    };
    let root = harness_path();
    let private = quote!(#root::__private);
    let requirements = requirements_fn(&root, &options.requirements);
    let body = registered_body(&root, signature)?;
    let registration = syn::Ident::new("__KINDLING_REGISTRATION", Span::call_site());
    Ok(quote! {
        #function

        #[doc(hidden)]
        #[allow(non_upper_case_globals, unsafe_code)]
        const _: () = {
            static #registration: #private::Registration = #private::Registration::new(
                ::core::module_path!(),
                #name_text,
                #ignored,
                #timeout,
                #requirements,
                { #body },
            );
            #private::ctor::declarative::ctor!(
                #[ctor(unsafe, anonymous)]
                fn __kindling_register() {
                    #private::register(&#registration);
                }
            );
        };
    })
}

/// A test is a non-generic `async fn` (its arguments are checked with its body).
fn check_signature(signature: &syn::Signature) -> syn::Result<()> {
    if signature.asyncness.is_none() {
        return Err(syn::Error::new(
            signature.fn_token.span(),
            "#[kindling::test] needs an `async fn`",
        ));
    }
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new(
            signature.generics.span(),
            "#[kindling::test] functions cannot be generic",
        ));
    }
    Ok(())
}

/// The registration's requirements: `None`, or a function returning the
/// `requires = ...` expressions, evaluated when the suite starts.
fn requirements_fn(
    root: &proc_macro2::TokenStream,
    expressions: &[Expr],
) -> proc_macro2::TokenStream {
    if expressions.is_empty() {
        quote!(::core::option::Option::None)
    } else {
        quote! {{
            fn __kindling_requirements() -> ::std::vec::Vec<#root::Requirement> {
                ::std::vec![#(#expressions),*]
            }
            ::core::option::Option::Some(__kindling_requirements as fn() -> ::std::vec::Vec<#root::Requirement>)
        }}
    }
}

/// The registration's body: a standalone one for a function without
/// argument, one taking the `TestContext<Env>` (with its type's name, to
/// match the suite's environment) for a function with one.
fn registered_body(
    root: &proc_macro2::TokenStream,
    signature: &syn::Signature,
) -> syn::Result<proc_macro2::TokenStream> {
    let name = &signature.ident;
    let private = quote!(#root::__private);
    match signature.inputs.len() {
        0 => Ok(quote! {
            fn __kindling_body() -> #private::BoxFuture<#root::TestResult> {
                ::std::boxed::Box::pin(async move {
                    #root::IntoTestResult::into_test_result(#name().await)
                })
            }
            #private::RegisteredBody::Standalone(__kindling_body)
        }),
        1 => {
            let FnArg::Typed(argument) = &signature.inputs[0] else {
                return Err(syn::Error::new(
                    signature.inputs.span(),
                    "#[kindling::test] functions are free functions, not methods",
                ));
            };
            let context_type = &argument.ty;
            let type_text = quote!(#context_type).to_string().replace(' ', "");
            Ok(quote! {
                fn __kindling_body(context: #context_type) -> #private::BoxFuture<#root::TestResult> {
                    ::std::boxed::Box::pin(async move {
                        #root::IntoTestResult::into_test_result(#name(context).await)
                    })
                }
                static __KINDLING_BODY: fn(#context_type) -> #private::BoxFuture<#root::TestResult> = __kindling_body;
                #private::RegisteredBody::WithEnv {
                    environment_type: #type_text,
                    make: &__KINDLING_BODY,
                }
            })
        }
        _ => Err(syn::Error::new(
            signature.inputs.span(),
            "#[kindling::test] functions take no argument or one `TestContext<Env>`",
        )),
    }
}

/// The path the generated code names the harness by: `::kindling` in a
/// package that depends on kindling (or is it), else `::kindling_harness`
/// in one that depends on the harness alone, as the caller's manifest says.
fn harness_path() -> proc_macro2::TokenStream {
    use proc_macro_crate::{FoundCrate, crate_name};
    let found = |package: &str, itself: &str| match crate_name(package) {
        Ok(FoundCrate::Itself) => Some(itself.to_owned()),
        Ok(FoundCrate::Name(name)) => Some(name),
        Err(_) => None,
    };
    let name = found("kindling", "kindling")
        .or_else(|| found("kindling-harness", "kindling_harness"))
        .unwrap_or_else(|| "kindling".to_owned());
    let ident = syn::Ident::new(&name, Span::call_site());
    quote!(::#ident)
}
