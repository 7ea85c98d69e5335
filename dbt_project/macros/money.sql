{# Every amount of money is a DECIMAL with 10 decimal places: sums stay exact, and a split
   of a charge loses at most 1e-10 per piece. Ratios (shares, fractions) are computed as
   doubles and the product is cast back, so no float is ever summed as money. #}
{% macro money(expression) -%}
    cast({{ expression }} as decimal(38, 10))
{%- endmacro %}

{% macro allocate(amount, share) -%}
    {{ money('cast(' ~ amount ~ ' as double) * (' ~ share ~ ')') }}
{%- endmacro %}

{# Quantities that get summed (GPU-hours, energy, sample shares, token weights) are DECIMALs
   too: a sum of doubles depends on the order a parallel engine adds them in, and re-running
   the pipeline must reproduce every mart exactly. #}
{% macro quantity(expression) -%}
    cast({{ expression }} as decimal(38, 12))
{%- endmacro %}
