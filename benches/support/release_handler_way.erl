%% Bench only: how OTP's release handler migrates the processes of a
%% module (release_handler_1: sys:suspend, sys:change_code and sys:resume,
%% one process after the other), as compiled code on the node itself:
%% the baseline for the longest suspension of hotswap-node's migration
%% (which sends each step to every process at once, from code evaluated
%% by erl_eval).
-module(release_handler_way).
-export([window/2]).

%% window(Module, Vsn) -> Microseconds from the first suspend to the last
%% resume of every process whose callback module is Module, the module's
%% own file loaded again in between (its old code purged first, untimed).
window(Module, Vsn) ->
    Ps = [P || P <- processes(), proc_lib:translate_initial_call(P) =:= {Module, init, 1}],
    File = code:which(Module),
    {ok, Bin} = file:read_file(File),
    code:soft_purge(Module),
    T0 = erlang:monotonic_time(microsecond),
    [ok = sys:suspend(P) || P <- Ps],
    {module, Module} = code:load_binary(Module, File, Bin),
    [ok = sys:change_code(P, Module, Vsn, []) || P <- Ps],
    [ok = sys:resume(P) || P <- Ps],
    erlang:monotonic_time(microsecond) - T0.
