%% The start of every script (see script.rs): evaluated by the bootstrap
%% (eval.rs) with P, the script's other parts, and B, the call's bindings.
%% The first part is the main one; each of the others is a function. The
%% main part runs with B, and its calls of local functions go to L, which
%% runs the function of that name and arity: erl_eval's local function
%% handler, as escripts that are not compiled run theirs. A function that
%% does not parse fails the match on [], with the parser's message.
[M | Fs] = P,
Forms = [element(2, erl_parse:parse_form(element(2, erl_scan:string(unicode:characters_to_list(F)))))
         || F <- Fs],
[] = [E || E <- Forms, element(1, E) =/= function],
D = maps:from_list([{{N, A}, Cs} || {function, _, N, A, Cs} <- Forms]),
L = fun L(N, As) ->
    {Body, Bs} = erl_eval:match_clause(map_get({N, length(As)}, D), As, #{}, {value, L}),
    element(2, erl_eval:exprs(Body, Bs, {value, L}, none))
end,
Main = element(2, erl_parse:parse_exprs(element(2, erl_scan:string(unicode:characters_to_list(M))))),
element(2, erl_eval:exprs(Main, B, {value, L}, none)).
