%% The processes a deploy of Mods would migrate (functions: prelude.erl,
%% migrate.erl), for status and --dry-run: those whose callback module is
%% one of Mods, found as the apply step finds them. Read-only.
%%
%% Bindings: Mods = [Module], each loaded or not.
%% Value: [{Module, Pid, Name}].
Loaded = lists:filter(fun erlang:module_loaded/1, Mods),
Running = maps:to_list(maps:merge(handlers(Loaded), callbacks(Loaded))),
[{M, P, name_of(P)} || {M, Ps} <- Running, P <- Ps].
