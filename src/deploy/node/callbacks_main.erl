%% The processes a deploy of Mods would migrate (functions: prelude.erl,
%% migrate.erl), for status and --dry-run: those whose callback module is
%% one of Mods, found as the apply step finds them. Read-only.
%%
%% Bindings: Mods = [Module], each loaded or not.
%% Value: [{Module, Pid, Name}].
Running = running_as_callback(lists:filter(fun erlang:module_loaded/1, Mods)),
[{M, P, name_of(P)} || {M, Ps} <- maps:to_list(Running), P <- Ps].
